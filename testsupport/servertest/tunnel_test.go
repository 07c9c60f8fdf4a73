package servertest

import (
	"net"
	"testing"
	"time"

	"github.com/gobwas/ws"
)

// pipeTunnel is a Tunnel over an in-memory connection whose server end
// the test drives.
func pipeTunnel(t *testing.T) (*Tunnel, net.Conn) {
	client, server := net.Pipe()
	t.Cleanup(func() { client.Close(); server.Close() })
	return &Tunnel{Conn: client, rd: client}, server
}

func TestTunnelOpenFor(t *testing.T) {
	tu, _ := pipeTunnel(t)
	if !tu.OpenFor(50 * time.Millisecond) {
		t.Error("an idle tunnel reads as closed")
	}

	tu, server := pipeTunnel(t)
	server.Close()
	if tu.OpenFor(time.Second) {
		t.Error("a tunnel whose connection ended without a Close reads as open")
	}

	tu, server = pipeTunnel(t)
	go func() {
		ws.WriteFrame(server, ws.NewTextFrame([]byte("data first")))
		ws.WriteFrame(server, ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusPolicyViolation, "session revoked")))
	}()
	if code, reason := tu.CloseWithin(time.Second); code != ws.StatusPolicyViolation || reason != "session revoked" {
		t.Errorf("CloseWithin = %d %q, want 1008 \"session revoked\"", code, reason)
	}

	tu, server = pipeTunnel(t)
	go ws.WriteFrame(server, ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusGoingAway, "")))
	if tu.OpenFor(time.Second) {
		t.Error("a tunnel the server closed reads as open")
	}
}
