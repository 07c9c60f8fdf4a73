package proxy

import "testing"

// TestCheckPath: a backslash, a NUL, or a segment starting "..;" or ".;"
// (anywhere: first, middle, last) is ambiguous; anything else is not.
func TestCheckPath(t *testing.T) {
	for p, ambiguous := range map[string]bool{
		"": false, "/": false, "/a/b": false, "/a/..b/c": false, "/a/b;..": false, "/a/.x;": false, "//": false,
		"..;": true, ".;x": true, "/..;/admin": true, "/a/.;/b": true, "/a/b/..;": true, "/a/..;x/b": true,
		"/a\\b": true, "/a\x00": true,
	} {
		if got := checkPath(p) != nil; got != ambiguous {
			t.Errorf("checkPath(%q) refused = %v, want %v", p, got, ambiguous)
		}
	}
}
