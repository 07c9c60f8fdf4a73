package handlertest

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// RawRequest sends head (a request line and header lines, each ending in
// CRLF) and then "Connection: close" and the blank line to addr, byte for
// byte on a new connection, so that a test can send what net/http's client
// would clean up or refuse. It returns the answer with its body read, all
// within 10 s. A connection that cannot be made fails tb. An answer that
// cannot be read is a nil response and the error, for a test to which a
// refusal is a result; a body cut short is the response, the part read
// and the error.
func RawRequest(tb testing.TB, addr, head string) (*http.Response, []byte, error) {
	tb.Helper()
	c := Dial(tb, addr, 10*time.Second)
	defer c.Close()
	if _, err := io.WriteString(c, head+"Connection: close\r\n\r\n"); err != nil {
		return nil, nil, err
	}
	res, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return nil, nil, err
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	return res, body, err
}

// Dial opens a TCP connection to addr, failing tb if it cannot, for a test
// that speaks to a server byte for byte. Reads and writes fail once within
// has passed (never, when within is 0). The caller closes the connection.
func Dial(tb testing.TB, addr string, within time.Duration) net.Conn {
	tb.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		tb.Fatal(err)
	}
	if within > 0 {
		c.SetDeadline(time.Now().Add(within))
	}
	return c
}
