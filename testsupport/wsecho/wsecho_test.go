package wsecho_test

import (
	"context"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/portcullis-proxy/portcullis/testsupport/wsecho"
)

// The upstream selects the subprotocol it accepts, shows each upgrade to
// OnUpgrade before answering, echoes text and binary messages with their
// opcode, and answers a Close.
func TestEcho(t *testing.T) {
	var seen atomic.Value
	srv := wsecho.Start(t, wsecho.Options{
		Protocol:  func(p string) bool { return p == "chat.v1" },
		OnUpgrade: func(r *http.Request) { seen.Store(r.Header.Get("X-Probe")) },
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d := ws.Dialer{Protocols: []string{"other", "chat.v1"}, Header: ws.HandshakeHeaderHTTP(http.Header{"X-Probe": {"here"}})}
	conn, _, hs, err := d.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if hs.Protocol != "chat.v1" {
		t.Errorf("subprotocol %q, want chat.v1", hs.Protocol)
	}
	if got, _ := seen.Load().(string); got != "here" {
		t.Errorf("OnUpgrade saw X-Probe %q by the time the dial returned, want here", got)
	}
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	for _, m := range []struct {
		op  ws.OpCode
		msg string
	}{{ws.OpText, "hello"}, {ws.OpBinary, "\x00\x01"}} {
		if err := wsutil.WriteClientMessage(conn, m.op, []byte(m.msg)); err != nil {
			t.Fatal(err)
		}
		got, op, err := wsutil.ReadServerData(conn)
		if err != nil || op != m.op || string(got) != m.msg {
			t.Errorf("echo of %v %q = %v %q, %v", m.op, m.msg, op, got, err)
		}
	}
	if err := wsutil.WriteClientMessage(conn, ws.OpClose, ws.NewCloseFrameBody(ws.StatusNormalClosure, "")); err != nil {
		t.Fatal(err)
	}
	h, err := ws.ReadHeader(conn)
	if err != nil || h.OpCode != ws.OpClose {
		t.Errorf("after the client's Close: %v %v, want a Close frame", h.OpCode, err)
	}
}
