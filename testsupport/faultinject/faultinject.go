// Package faultinject holds the fault injectors tests use for failures a
// real part cannot be made to show on demand. It is part of testsupport
// (the test harnesses): only _test files import it.
package faultinject

import (
	"io"
	"net"
	"sync"
	"testing"
)

// Hanging starts a listener on loopback that accepts connections, reads
// whatever is sent and never answers — an identity provider, authorizer or
// upstream stuck under load. It returns the listener's host:port; the
// listener and its connections are closed when the test ends.
func Hanging(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			go io.Copy(io.Discard, c)
		}
	}()
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return l.Addr().String()
}

// HangingURL is [Hanging] as an http:// URL.
func HangingURL(t testing.TB) string {
	t.Helper()
	return "http://" + Hanging(t)
}
