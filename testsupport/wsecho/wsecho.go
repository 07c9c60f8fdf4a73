// Package wsecho is a real WebSocket upstream for tests, built on gobwas/ws:
// it completes the handshake over HTTP/1.1 and echoes every message back
// with its opcode, answering pings and Close frames as RFC 6455 §5.5 asks
// (wsutil's control handler). It is part of testsupport (the test
// harnesses): only _test files import it.
package wsecho

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
)

// Options configure an echo upstream. The zero value accepts every
// upgrade and selects no subprotocol.
type Options struct {
	// Protocol reports whether a subprotocol the client offers is
	// accepted; the first accepted one is selected (nil: none).
	Protocol func(string) bool
	// OnUpgrade, when set, sees each upgrade request before the 101 is
	// written: what it records is there by the time the client's dial
	// returns.
	OnUpgrade func(*http.Request)
}

// Echo answers every message the client sends on conn with the same
// message until a read or a write fails (the client's Close among them),
// and returns that error. It does not close conn.
func Echo(conn io.ReadWriter) error {
	for {
		msg, op, err := wsutil.ReadClientData(conn)
		if err != nil {
			return err
		}
		if err := wsutil.WriteServerMessage(conn, op, msg); err != nil {
			return err
		}
	}
}

// Handler upgrades each request and echoes on the connection in a
// goroutine of its own, which closes the connection when [Echo] returns.
// A request that is not a valid upgrade gets gobwas/ws's refusal.
func Handler(o Options) http.Handler {
	up := ws.HTTPUpgrader{Protocol: o.Protocol}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if o.OnUpgrade != nil {
			o.OnUpgrade(r)
		}
		conn, _, _, err := up.Upgrade(r, w)
		if err != nil {
			return
		}
		go func() {
			defer conn.Close()
			_ = Echo(conn)
		}()
	})
}

// Start runs [Handler] on a loopback listener; it is closed when tb ends.
func Start(tb testing.TB, o Options) *httptest.Server {
	srv := httptest.NewServer(Handler(o))
	tb.Cleanup(srv.Close)
	return srv
}
