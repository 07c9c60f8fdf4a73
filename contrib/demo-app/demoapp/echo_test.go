package demoapp

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
)

// startEcho serves the echo service on a loopback test server.
func startEcho(t *testing.T, maxMessage int64) string {
	t.Helper()
	e := &echoService{log: slog.New(slog.NewTextHandler(io.Discard, nil)), maxMessage: maxMessage, idle: time.Minute}
	srv := httptest.NewServer(e)
	t.Cleanup(srv.Close)
	return "ws" + strings.TrimPrefix(srv.URL, "http")
}

// dial opens a client connection with the given handshake headers and
// reads the greeting.
func dial(t *testing.T, url string, h http.Header) (net.Conn, string) {
	t.Helper()
	d := ws.Dialer{Header: ws.HandshakeHeaderHTTP(h), Timeout: 5 * time.Second}
	conn, br, _, err := d.Dial(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if br != nil {
		// The greeting came with the handshake answer.
		conn = bufferedConn{Conn: conn, r: io.MultiReader(br, conn)}
	}
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	greeting, err := wsutil.ReadServerText(conn)
	if err != nil {
		t.Fatal(err)
	}
	return conn, string(greeting)
}

// bufferedConn reads the bytes the dialer buffered first.
type bufferedConn struct {
	net.Conn
	r io.Reader
}

func (c bufferedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

func TestEchoGreetsTheIdentityTheProxySet(t *testing.T) {
	url := startEcho(t, 1<<10)
	cases := []struct {
		name   string
		header http.Header
		want   string
	}{
		{"email", http.Header{HeaderEmail: {"ada@example.com"}, HeaderSubject: {"id-1"}}, "connected as ada@example.com"},
		{"subject only", http.Header{HeaderSubject: {"id-1"}}, "connected as id-1"},
		{"no identity", http.Header{}, "connected as an anonymous visitor"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, greeting := dial(t, url, tc.header)
			if !strings.HasPrefix(greeting, tc.want) {
				t.Errorf("greeting = %q, want it to start with %q", greeting, tc.want)
			}
		})
	}
}

func TestEchoReturnsMessagesUnchanged(t *testing.T) {
	conn, _ := dial(t, startEcho(t, 1<<10), nil)
	msgs := []struct {
		op   ws.OpCode
		data []byte
	}{
		{ws.OpText, []byte("hello")},
		{ws.OpBinary, []byte{0, 1, 2, 0xff}},
		{ws.OpText, []byte("ünïcode ✓")},
		{ws.OpText, []byte{}},
	}
	for _, m := range msgs {
		if err := wsutil.WriteClientMessage(conn, m.op, m.data); err != nil {
			t.Fatal(err)
		}
		got, op, err := wsutil.ReadServerData(conn)
		if err != nil {
			t.Fatal(err)
		}
		if op != m.op || !bytes.Equal(got, m.data) {
			t.Errorf("sent %v %q, got %v %q", m.op, m.data, op, got)
		}
	}
	// A ping is answered with a pong carrying the same payload.
	if err := ws.WriteFrame(conn, ws.MaskFrame(ws.NewPingFrame([]byte("are you there")))); err != nil {
		t.Fatal(err)
	}
	h, err := ws.ReadHeader(conn)
	if err != nil {
		t.Fatal(err)
	}
	payload := make([]byte, h.Length)
	if _, err := io.ReadFull(conn, payload); err != nil {
		t.Fatal(err)
	}
	if h.OpCode != ws.OpPong || string(payload) != "are you there" {
		t.Errorf("ping answered with %v %q, want a pong with the same payload", h.OpCode, payload)
	}
}

// readClose reads frames until a Close and returns its code. It does not
// answer the Close: the server may already be gone.
func readClose(t *testing.T, conn net.Conn) ws.StatusCode {
	t.Helper()
	for {
		f, err := ws.ReadFrame(conn)
		if err != nil {
			t.Fatalf("want a Close, got %v", err)
		}
		if f.Header.OpCode == ws.OpClose {
			code, _ := ws.ParseCloseFrameData(f.Payload)
			return code
		}
	}
}

func TestEchoCloses(t *testing.T) {
	cases := []struct {
		name string
		send func(net.Conn) error
		want ws.StatusCode
	}{
		{"client close is returned", func(c net.Conn) error {
			return ws.WriteFrame(c, ws.MaskFrame(ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusPolicyViolation, "max lifetime reached"))))
		}, ws.StatusPolicyViolation},
		{"message over the limit", func(c net.Conn) error {
			return wsutil.WriteClientText(c, bytes.Repeat([]byte("x"), 2<<10))
		}, ws.StatusMessageTooBig},
		{"invalid UTF-8 text", func(c net.Conn) error {
			return wsutil.WriteClientText(c, []byte{0xff, 0xfe})
		}, ws.StatusInvalidFramePayloadData},
	}
	url := startEcho(t, 1<<10)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			conn, _ := dial(t, url, nil)
			if err := tc.send(conn); err != nil {
				t.Fatal(err)
			}
			if got := readClose(t, conn); got != tc.want {
				t.Errorf("close code %d, want %d", got, tc.want)
			}
		})
	}
}

func TestEchoRefusesPlainRequests(t *testing.T) {
	url := "http" + strings.TrimPrefix(startEcho(t, 1<<10), "ws")
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusBadRequest {
		t.Errorf("plain GET: %d, want 400", res.StatusCode)
	}
}
