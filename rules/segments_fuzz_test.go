package rules

import (
	"strings"
	"testing"
)

// FuzzSegments: for any pattern the segments matcher serves and any URL,
// its result and groups are the regexp's. Beside the pattern as given, it
// tries one built from the input in the shape the matcher serves (a class
// run stopped by the literal after it, a last .* or .+), so that most runs
// exercise the matcher rather than patterns it leaves to the regexp.
func FuzzSegments(f *testing.F) {
	for _, s := range [][2]string{
		{"http://<[^/]+>/anon/<.*>", "http://app.example/anon/items/42"},
		{"http://<[^/]*>/api/<[^/]+>", "http:///api/x"},
		{"<[^:]+>://<[^/]+>/<.+>", "https://a/\n"},
		{"http://a/<[^.]+>.<[^/]*>", "http://a/b.c/d"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, p, u string) {
		for _, cand := range []string{p, servedShape(p)} {
			pat, err := compilePattern(Regexp, cand)
			if err != nil {
				continue
			}
			if r, ok := pat.(regexpPattern); ok && r.seg != nil {
				segmentsAgree(t, r, u)
			}
		}
	})
}

// servedShape builds a pattern of the shape the segments matcher serves
// from p: p's first byte (when printable) is the class's stopping byte,
// the rest is the literal after the run, and p's length picks the run's
// quantifiers and the last part.
func servedShape(p string) string {
	if p == "" || p[0] < ' ' || p[0] > '~' || strings.ContainsAny(p, "<>") {
		return ""
	}
	c, lit := p[:1], p
	q := [...]string{"+", "*"}[len(p)%2]
	last := [...]string{".*", ".+", "[^" + c + "]" + q}[len(p)%3]
	return "http://<[^" + c + "]" + q + ">" + lit + "<" + last + ">"
}
