package app_test

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/portcullis-proxy/portcullis/testsupport/faultinject"
	"github.com/portcullis-proxy/portcullis/testsupport/handlertest"
	"github.com/portcullis-proxy/portcullis/testsupport/wsecho"
)

// wsEchoUpstream is a real WebSocket server on loopback (gobwas/ws) that
// echoes every message; it reports each connection it accepted on conns.
func wsEchoUpstream(t *testing.T) (url string, conns chan net.Conn) {
	conns = make(chan net.Conn, 16)
	addr := faultinject.Serve(t, func(c net.Conn) {
		defer c.Close()
		if _, err := ws.Upgrade(c); err != nil {
			return
		}
		select {
		case conns <- c:
		default:
		}
		_ = wsecho.Echo(c)
	})
	return "http://" + addr, conns
}

const tunnelConfig = `
authenticators: {anonymous: {enabled: true}}
authorizers: {allow: {enabled: true}}
mutators: {noop: {enabled: true}}
`

func tunnelRule(upstream string) string {
	return handlertest.Rule{ID: "ws", URL: "http://<[^/]+>/<.*>", Upstream: upstream, More: []string{"websocket: {close_grace: 200ms}"}}.YAML()
}

const upgradeRequest = "GET /chat HTTP/1.1\r\nHost: proxy.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"

// TestTunnelClientVanishes: a client that goes away while the proxy is
// still dialling a silent upstream, or in the middle of a frame, ends its
// tunnel at once; nothing stays open and no goroutine is left.
func TestTunnelClientVanishes(t *testing.T) {
	t.Run("during the handshake", func(t *testing.T) {
		silent := faultinject.HangingURL(t) // accepts the upgrade's connection, never answers
		s := startServer(t, tunnelConfig, tunnelRule(silent))
		baseline := runtime.NumGoroutine()
		c := handlertest.Dial(t, s.Addr("proxy"), 0)
		io.WriteString(c, upgradeRequest)
		time.Sleep(200 * time.Millisecond) // the proxy is waiting for the upstream's 101
		start := time.Now()
		c.Close()
		goroutinesSettle(t, baseline)
		// The tunnel's handshake timeout is 10s: ending well before it
		// shows the client's departure ended the dial.
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("the dial outlived its client by %v", d)
		}
		if n := s.App().Tunnels.Active(); n != 0 {
			t.Errorf("%d tunnels open", n)
		}
	})

	t.Run("mid-frame", func(t *testing.T) {
		up, conns := wsEchoUpstream(t)
		s := startServer(t, tunnelConfig, tunnelRule(up))
		baseline := runtime.NumGoroutine()
		c := handlertest.Dial(t, s.Addr("proxy"), 10*time.Second)
		io.WriteString(c, upgradeRequest)
		br := bufio.NewReader(c)
		res, err := http.ReadResponse(br, nil)
		if err != nil || res.StatusCode != http.StatusSwitchingProtocols {
			t.Fatalf("upgrade: %v %v", res, err)
		}
		<-conns
		// A masked text frame announcing 100 bytes, of which 10 are sent.
		head := []byte{0x81, 0x80 | 100, 1, 2, 3, 4}
		c.Write(append(head, strings.Repeat("x", 10)...))
		waitUntil(t, func() bool { return s.App().Tunnels.Active() == 1 })
		c.Close()
		waitUntil(t, func() bool { return s.App().Tunnels.Active() == 0 })
		// The upstream's goroutine, counted in the settle, ends only when
		// the proxy closed its connection.
		goroutinesSettle(t, baseline)
	})
}
