package proctest

import (
	"net"
	"testing"
	"time"
)

// Ports reserves n distinct loopback ports by listening on port 0 and
// releasing them together; the caller binds them right after. A port is
// free only at the moment it is returned: prefer port 0 where the program
// under test reports what it bound.
func Ports(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// FreePorts is [Ports] for a test: it fails tb when no port can be had.
func FreePorts(tb testing.TB, n int) []int {
	tb.Helper()
	ports, err := Ports(n)
	if err != nil {
		tb.Fatal(err)
	}
	return ports
}

// FreePort is one of [FreePorts].
func FreePort(tb testing.TB) int {
	tb.Helper()
	return FreePorts(tb, 1)[0]
}

// Listening reports whether something accepts TCP connections on addr.
func Listening(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}
