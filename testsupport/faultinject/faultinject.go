// Package faultinject holds the fault injectors tests use for failures a
// real part cannot be made to show on demand: a service that is down, one
// that accepts and never answers, one that answers bytes that are not
// HTTP, one that resets the connection, an API that fails its first
// requests. Each of them but the service that is down (on whose port
// nothing listens) listens on loopback for one test and is closed, with
// every connection it accepted, when the test ends. It is part of
// testsupport (the test harnesses): only _test files import it.
package faultinject

import (
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// Serve runs handle, in a goroutine of its own, on every connection a
// loopback listener accepts, and returns the listener's host:port. handle
// need not close the connection: the listener and the connections still
// open are closed when the test ends. It is the accept loop under the
// injectors below, and serves a test that answers byte by byte.
func Serve(t testing.TB, handle func(net.Conn)) string {
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
			go handle(c)
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

// RefusingURL is an http:// URL on which nothing listens (a port bound and
// released at once): connections are refused, as when the service is
// down.
func RefusingURL(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "http://" + addr
}

// Hanging accepts connections, reads whatever is sent and never answers —
// an identity provider, authorizer or upstream stuck under load. It
// returns the listener's host:port.
func Hanging(t testing.TB) string {
	t.Helper()
	return Serve(t, func(c net.Conn) { io.Copy(io.Discard, c) })
}

// HangingURL is [Hanging] as an http:// URL.
func HangingURL(t testing.TB) string {
	t.Helper()
	return "http://" + Hanging(t)
}

// NotHTTPURL is an http:// URL whose server reads the request and answers
// bytes that are not HTTP.
func NotHTTPURL(t testing.TB) string {
	t.Helper()
	return "http://" + Serve(t, func(c net.Conn) {
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 4096)
		c.Read(buf)
		c.Write([]byte("\x00\xff\xfegarbage that is not a status line\r\n\r\n{]"))
	})
}

// ResettingURL is an http:// URL whose server reads the request, writes
// head (possibly nothing) and resets the connection (RST, not FIN).
func ResettingURL(t testing.TB, head string) string {
	t.Helper()
	return "http://" + Serve(t, func(c net.Conn) {
		c.SetDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 4096)
		c.Read(buf)
		io.WriteString(c, head)
		c.(*net.TCPConn).SetLinger(0)
		c.Close()
	})
}
