package app_test

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/portcullis-proxy/portcullis/testsupport/handlertest"
	"github.com/portcullis-proxy/portcullis/testsupport/servertest"
	"github.com/portcullis-proxy/portcullis/testsupport/wsecho"
)

// TestWebSocketThroughTheServer opens a tunnel through the assembled
// server, echoes through it, sees it closed at the rule's max lifetime with
// 1008 and the reason, and finds the tunnel in /metrics.
func TestWebSocketThroughTheServer(t *testing.T) {
	up := wsecho.Start(t, wsecho.Options{})
	s := startServer(t, openConfig, handlertest.Rules(handlertest.Rule{ID: "ws", URL: "<https?>://<[^/]+>/ws", Mutators: []string{"header"}, Upstream: up.URL,
		More: []string{`websocket: {max_lifetime: 1s, allowed_origins: ["http://app.example"]}`}}))

	// A foreign Origin is refused before any upgrade.
	req, _ := http.NewRequest("GET", s.URL()+"/ws", nil)
	for k, v := range map[string]string{"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
		"Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "Origin": "http://evil.example"} {
		req.Header.Set(k, v)
	}
	if st, _ := servertest.Fetch(t, req); st != http.StatusForbidden {
		t.Errorf("foreign Origin: %d, want 403", st)
	}

	tu, status := s.DialTunnel(t, ws.Dialer{Header: ws.HandshakeHeaderHTTP(http.Header{"Origin": {"http://app.example"}})}, "/ws")
	if tu == nil {
		t.Fatalf("allowed Origin: %d, want 101", status)
	}
	opened := time.Now()
	tu.Echo(t, "hello")
	tu.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err := wsutil.ReadServerText(tu)
	var closed wsutil.ClosedError
	if !errors.As(err, &closed) || closed.Code != ws.StatusPolicyViolation || closed.Reason != "max lifetime reached" {
		t.Fatalf("after max lifetime: %v, want Close 1008 \"max lifetime reached\"", err)
	}
	if lived := time.Since(opened); lived < 900*time.Millisecond || lived > 6*time.Second {
		t.Errorf("tunnel lived %v, want about its 1s max lifetime", lived)
	}

	waitUntil(t, func() bool {
		res, err := http.Get(s.MetricsURL())
		if err != nil {
			return false
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		m := string(b)
		return strings.Contains(m, `portcullis_websocket_tunnels_closed_total{reason="max_lifetime",rule="ws"} 1`) &&
			strings.Contains(m, `portcullis_websocket_tunnels_active{rule="ws"} 0`) &&
			strings.Contains(m, `portcullis_websocket_handshakes_total{result="origin_refused",rule="ws"} 1`) &&
			strings.Contains(m, `portcullis_websocket_deadline_close_lateness_seconds_count{reason="max_lifetime",rule="ws"} 1`) &&
			strings.Contains(m, `portcullis_websocket_bytes_relayed_total{direction="to_upstream",rule="ws"}`)
	})
}
