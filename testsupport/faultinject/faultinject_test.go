package faultinject_test

import (
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/portcullis-proxy/portcullis/testsupport/faultinject"
)

func TestRefusing(t *testing.T) {
	_, err := http.Get(faultinject.RefusingURL(t))
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("GET = %v, want the connection refused", err)
	}
}

func TestHangingNeverAnswers(t *testing.T) {
	client := &http.Client{Timeout: 300 * time.Millisecond}
	_, err := client.Get(faultinject.HangingURL(t))
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Errorf("GET = %v, want a timeout", err)
	}
}

func TestNotHTTP(t *testing.T) {
	_, err := http.Get(faultinject.NotHTTPURL(t))
	if err == nil || !strings.Contains(err.Error(), "malformed HTTP") {
		t.Errorf("GET = %v, want a malformed answer", err)
	}
}

func TestResettingAfterHead(t *testing.T) {
	res, err := http.Get(faultinject.ResettingURL(t, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial"))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if _, err := io.ReadAll(res.Body); !errors.Is(err, syscall.ECONNRESET) && !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("body read = %v, want the connection reset", err)
	}
}

// Serve closes the connections still open when the test ends: a handler
// that does not close its connection does not hold the client.
func TestServeClosesConnectionsAtCleanup(t *testing.T) {
	var c net.Conn
	t.Run("server", func(t *testing.T) {
		addr := faultinject.Serve(t, func(c net.Conn) { io.Copy(io.Discard, c) })
		var err error
		if c, err = net.Dial("tcp", addr); err != nil {
			t.Fatal(err)
		}
		c.Write([]byte("x"))
		time.Sleep(50 * time.Millisecond) // accepted
	})
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err != io.EOF && !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("read after the server's test ended = %v, want the connection closed", err)
	}
	c.Close()
}

func TestFlakyFailsFirstThenServes(t *testing.T) {
	f := faultinject.FlakyAPI(t, 2, http.StatusBadGateway, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	}))
	for i, want := range []int{http.StatusBadGateway, http.StatusBadGateway, http.StatusOK, http.StatusOK} {
		res, err := http.Get(f.URL)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != want || (want == http.StatusOK) != (string(b) == "ok") {
			t.Errorf("request %d = %d %q, want %d", i+1, res.StatusCode, b, want)
		}
	}
	if n := f.Attempts(); n != 4 {
		t.Errorf("Attempts = %d, want 4", n)
	}
}
