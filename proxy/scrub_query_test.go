package proxy

import "testing"

// TestScrubQuery: carrier parameters go whatever their spelling or
// separator ("&", or ";" which some frameworks split on), the rest stays
// byte for byte.
func TestScrubQuery(t *testing.T) {
	names := []string{"token"}
	for raw, want := range map[string]string{
		"token=a&keep=1":       "keep=1",
		"keep=1&token=a&x=%20": "keep=1&x=%20",
		"to%6Ben=a&keep=1":     "keep=1",
		"keep=1;token=a":       "keep=1",
		"token=a;token=b&k=2":  "k=2",
		"a=1;b=2&token=x;c=3":  "a=1;b=2&c=3",
		"tokens=a&Token=b":     "tokens=a&Token=b",
		"token":                "",
		"keep=%zz&token=a":     "keep=%zz",
		"":                     "",
	} {
		if got := scrubQuery(raw, names); got != want {
			t.Errorf("scrubQuery(%q) = %q, want %q", raw, got, want)
		}
	}
}
