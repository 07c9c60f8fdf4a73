package servertest

import (
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
)

// Tunnel is a client's WebSocket through the server's proxy. It reads the
// bytes the handshake buffered past the upgrade answer before the
// connection's own, so a frame the proxy sent right after the upgrade is
// not lost; gobwas/ws's client functions (wsutil.ReadServerText, …) take
// it as the connection.
type Tunnel struct {
	net.Conn
	rd io.Reader
}

// Read reads the server's side of the tunnel.
func (tu *Tunnel) Read(p []byte) (int, error) { return tu.rd.Read(p) }

// DialTunnel opens a WebSocket with d to path on the proxy (WSURL()+path),
// within d.Timeout (10s when it is 0); the connection is closed when tb
// ends. An upgrade the proxy refuses returns nil and the refusal's
// status; a dial that gets no answer fails tb. d.OnStatusError is the
// helper's own.
func (s *Server) DialTunnel(tb testing.TB, d ws.Dialer, path string) (*Tunnel, int) {
	tb.Helper()
	status := 0
	d.OnStatusError = func(st int, _ []byte, _ io.Reader) { status = st }
	if d.Timeout == 0 {
		d.Timeout = 10 * time.Second
	}
	conn, br, _, err := d.Dial(context.Background(), s.WSURL()+path)
	if err != nil {
		if status == 0 {
			tb.Fatalf("dial %s: %v", path, err)
		}
		return nil, status
	}
	tb.Cleanup(func() { conn.Close() })
	tu := &Tunnel{Conn: conn, rd: conn}
	if br != nil {
		tu.rd = io.MultiReader(br, conn)
	}
	return tu, 101
}

// Echo sends msg as a text message and fails tb unless the next data
// message from the server, within 10s, is msg.
func (tu *Tunnel) Echo(tb testing.TB, msg string) {
	tb.Helper()
	_ = tu.SetDeadline(time.Now().Add(10 * time.Second))
	defer tu.SetDeadline(time.Time{})
	if err := wsutil.WriteClientText(tu, []byte(msg)); err != nil {
		tb.Fatal(err)
	}
	got, _, err := wsutil.ReadServerData(tu)
	if err != nil || string(got) != msg {
		tb.Fatalf("echo = %q, %v; want %q", got, err, msg)
	}
}

// CloseWithin reads frames until the server's Close, within d, and
// returns its code and reason: 0 and "" when none came in time or the
// connection ended without one.
func (tu *Tunnel) CloseWithin(d time.Duration) (ws.StatusCode, string) {
	code, reason, _ := tu.closeWithin(d)
	return code, reason
}

// OpenFor reports whether the tunnel is still open after d: no Close came
// and the connection did not end (the read timed out, nothing else).
func (tu *Tunnel) OpenFor(d time.Duration) bool {
	code, _, err := tu.closeWithin(d)
	var ne net.Error
	return code == 0 && errors.As(err, &ne) && ne.Timeout()
}

// closeWithin reads frames until the server's Close, within d; without
// one, err says why reading stopped (a timeout, the connection's end).
func (tu *Tunnel) closeWithin(d time.Duration) (ws.StatusCode, string, error) {
	_ = tu.SetReadDeadline(time.Now().Add(d))
	defer tu.SetReadDeadline(time.Time{})
	for {
		h, err := ws.ReadHeader(tu)
		if err != nil {
			return 0, "", err
		}
		p := make([]byte, h.Length)
		if _, err := io.ReadFull(tu, p); err != nil {
			return 0, "", err
		}
		if h.OpCode == ws.OpClose {
			code, reason := ws.ParseCloseFrameData(p)
			return code, reason, nil
		}
	}
}
