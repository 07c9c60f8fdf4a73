package rules

import (
	"strings"
	"testing"
)

// TestPatternEngines: Go's RE2 serves every pattern it accepts; only a
// pattern RE2 refuses (a lookaround) runs on regexp2, as
// Oathkeeper's rule/engine_regexp_test.go patterns do; a pattern neither
// accepts is refused.
func TestPatternEngines(t *testing.T) {
	for _, tc := range []struct {
		pattern   string
		backtrack bool
		match     map[string]bool
	}{
		{"http://x/<[a-z]+>/<[0-9]+>", false, map[string]bool{"http://x/abc/12": true, "http://x/abc/x": false}},
		{"http://x/<(?!admin)[a-z]+>", true, map[string]bool{"http://x/user": true, "http://x/admin": false, "http://x/admins": false}},
		{"http://x/<(?=[a-z]+$)[a-z]*n>", true, map[string]bool{"http://x/admin": true, "http://x/adm1n": false}},
	} {
		p, err := compilePattern(Regexp, tc.pattern)
		if err != nil {
			t.Fatalf("%s: %v", tc.pattern, err)
		}
		if _, bt := p.(backtrackPattern); bt != tc.backtrack {
			t.Errorf("%s: backtracking engine = %v, want %v", tc.pattern, bt, tc.backtrack)
		}
		for u, want := range tc.match {
			if _, got := p.match(u); got != want {
				t.Errorf("%s: match(%q) = %v, want %v", tc.pattern, u, got, want)
			}
		}
	}
	if _, err := compilePattern(Regexp, "http://x/<(?!a>"); err == nil {
		t.Error("a pattern neither engine accepts was not refused")
	}
}

// TestBacktrackTimeLimitIsNoMatch: a pattern that backtracks
// catastrophically on a hostile URL stops at BacktrackTimeout and does not
// match (404), rather than holding the request.
func TestBacktrackTimeLimitIsNoMatch(t *testing.T) {
	p, err := compilePattern(Regexp, "http://x/<(?=a)(a|aa)+b>")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := p.match("http://x/" + strings.Repeat("a", 5000) + "c"); ok {
		t.Error("a hostile URL matched")
	}
	if _, ok := p.match("http://x/aab"); !ok {
		t.Error("a URL the pattern matches did not")
	}
}
