package rules

import (
	"slices"
	"testing"
)

// segmentsAgree fails t when the pattern's segments matcher and its regular
// expression give different results for u.
func segmentsAgree(t *testing.T, r regexpPattern, u string) {
	t.Helper()
	got, gotOK := r.seg.match(u)
	m := r.re.FindStringSubmatch(u)
	wantOK := m != nil
	var want []string
	if wantOK {
		want = m[1:]
	}
	if gotOK != wantOK || !slices.Equal(got, want) {
		t.Errorf("%s: match(%q) = %q, %v; the regexp gives %q, %v", r.re, u, got, gotOK, want, wantOK)
	}
}

// TestSegmentsMatchAsTheRegexp: a pattern of literal text and runs of one
// class whose extents are forced is matched without the regexp engine,
// with the regexp's result and groups for every URL; any other pattern
// keeps the regexp.
func TestSegmentsMatchAsTheRegexp(t *testing.T) {
	urls := []string{
		"http://app.example/anon/items/42", "http://app.example/anon/", "http://app.example/anon",
		"http://app.example/anon/a\nb", "http://app.example/anon/\n", "http://a/b/anon/x",
		"http://app.example/api/x", "http://app.example/api/", "http://app.example/api/x/y",
		"http://app.example:8080/anon/items/42", "http:///anon/x", "https://app.example/anon/x",
		"http://\xff\xfe/anon/\xc3", "http://é.example/anon/ü", "http://a\nb/anon/x",
		"http://app.example/v1.2/x", "http://app.example/v1/x", "http://app.example/", "",
	}
	for _, tc := range []struct {
		pattern string
		fast    bool
	}{
		{"http://<[^/]+>/anon/<.*>", true},
		{"http://<[^/]+>/anon/<.+>", true},
		{"http://<[^/]*>/api/<[^/]+>", true},
		{"http://<[^/]+>/api/<[^/]*>", true},
		{"http://app.example/<[^.]+>.<[^/]+>/x", true},
		{"<[^:]+>://<[^/]+>/<.*>", true},
		{"http://<[^/]+>/<[^/]+>/<[^/]+>", true},
		{"http://<[^/]+>/anon", true},
		// Not forced, or not a class run: the regexp serves them.
		{"http://<.*>/anon/<.*>", false},
		{"http://<[^/]+><[^/]+>/x", false},
		{"http://<[^/]+>x/<.*>", false},
		{"http://<[^/]+>/<.*>/x", false},
		{"http://<[^\\]]+>/<.*>", false},
		{"http://<[^/]+?>/<.*>", false},
		{"http://<[a-z]+>/<.*>", false},
		{"http://<[^/]+>/<(?s).*>", false},
		{"http://app.example/anon/items/42", false},
	} {
		p, err := compilePattern(Regexp, tc.pattern)
		if err != nil {
			t.Fatalf("%s: %v", tc.pattern, err)
		}
		r, ok := p.(regexpPattern)
		if !ok {
			if tc.fast {
				t.Errorf("%s compiled to %T, want a regexp with segments", tc.pattern, p)
			}
			continue
		}
		if (r.seg != nil) != tc.fast {
			t.Errorf("%s: matched without the regexp = %v, want %v", tc.pattern, r.seg != nil, tc.fast)
		}
		if r.seg == nil {
			continue
		}
		for _, u := range urls {
			segmentsAgree(t, r, u)
		}
	}
}

// BenchmarkSegments matches a URL against the rules of bench/'s proxy
// figures (one matches, three are tried and do not), with the segments
// matcher and with the regexp engine it stands in for.
func BenchmarkSegments(b *testing.B) {
	var ps []regexpPattern
	for _, prefix := range []string{"/anon", "/ws", "/wsl", "/sse"} {
		p, err := compilePattern(Regexp, "http://<[^/]+>"+prefix+"/<.*>")
		if err != nil {
			b.Fatal(err)
		}
		ps = append(ps, p.(regexpPattern))
	}
	const u = "http://127.0.0.1:4455/anon/items/42"
	b.Run("segments", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			for _, p := range ps {
				p.seg.match(u)
			}
		}
	})
	b.Run("regexp", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			for _, p := range ps {
				p.re.FindStringSubmatch(u)
			}
		}
	})
}
