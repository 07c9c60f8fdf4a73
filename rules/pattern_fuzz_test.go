package rules

import (
	"strings"
	"testing"
)

// FuzzPattern compiles arbitrary match.url patterns with both strategies
// and matches arbitrary URLs against them. Whatever the input: no panic,
// and a URL a pattern matches starts with the pattern's literal prefix (the
// text before its first <), which the prefix index relies on to find the
// rule. For regexp patterns the capture groups are the pattern's < > parts,
// in order.
func FuzzPattern(f *testing.F) {
	seeds := [][2]string{
		{"http://example.com/api/<.*>", "http://example.com/api/users/1"},
		{"<https?>://<[^/]+>/admin/<.*>", "https://a.example/admin/x"},
		{"http://example.com/<[0-9]+>/<[a-z]+>", "http://example.com/12/ab"},
		{"http://example.com/<**>", "http://example.com/a/b/c"},
		{"http://<*>.example.com/<*>", "http://api.example.com/x"},
		{"http://example.com/<{a,b}>/x", "http://example.com/a/x"},
		{"http://example.com/literal", "http://example.com/literal"},
		{"http://x/<a)|(b>", "http://other/b"},
		{"http://x/<<nested>>", "http://x/<nested>"},
		{"http://x/<[>", "http://x/["},
		{"http://x/<(?i)ADMIN>", "http://x/admin"},
		{"http://x/<.*>$<.*>", "http://x/a$b"},
		{"http://x/\\<.*>", "http://x/\\y"},
		{"http://x/[<*>]", "http://x/[y]"},
	}
	for _, s := range seeds {
		f.Add(s[0], s[1], false)
		f.Add(s[0], s[1], true)
	}
	f.Fuzz(func(t *testing.T, p, u string, glob bool) {
		strategy := Regexp
		if glob {
			strategy = Glob
		}
		pat, err := compilePattern(strategy, p)
		if err != nil {
			return
		}
		groups, ok := pat.match(u)
		if !ok {
			return
		}
		if prefix := literalPrefix(p); !strings.HasPrefix(u, prefix) {
			t.Fatalf("%s pattern %q matches %q, which does not start with its literal prefix %q", strategy, p, u, prefix)
		}
		if strategy == Regexp {
			parts, _ := delimited(p)
			if want := len(parts) / 2; len(groups) < want {
				t.Fatalf("pattern %q has %d < > parts but matching %q gave only %d groups %q", p, want, u, len(groups), groups)
			}
		}
	})
}
