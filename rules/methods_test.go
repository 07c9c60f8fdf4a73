package rules

import "testing"

// TestAllowsIsTheMethodList: the bits a standard method is read from say
// what match.methods says, for standard, custom and lower-case methods.
func TestAllowsIsTheMethodList(t *testing.T) {
	for _, listed := range [][]string{{"GET"}, {"GET", "POST", "TRACE"}, {"CUSTOM"}, {"get", "DELETE"}, {"OPTIONS", "HEAD", "PUT", "PATCH", "CONNECT"}} {
		c := &Compiled{methods: map[string]bool{}}
		for _, m := range listed {
			c.methods[m] = true
			c.methodBits |= methodBit(m)
		}
		for _, m := range []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "CONNECT", "OPTIONS", "TRACE", "get", "CUSTOM", "Get", ""} {
			if got, want := c.allows(m), c.methods[m]; got != want {
				t.Errorf("methods %q: allows(%q) = %v, want %v", listed, m, got, want)
			}
		}
	}
}
