package tunnel

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"

	"github.com/gobwas/ws"
)

// goroutinesIn counts the goroutines whose stack has a frame containing
// fn.
func goroutinesIn(fn string) int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	count := 0
	for _, g := range bytes.Split(buf, []byte("\n\n")) {
		if bytes.Contains(g, []byte(fn)) {
			count++
		}
	}
	return count
}

// TestTunnelIdleGoroutines: an idle tunnel on the goroutine relay holds
// two goroutines (one per direction); on the poll relay none, both before
// and after traffic, and the poller's dispatcher runs only while some
// tunnel is open. A direction reading TLS (here the client's, through a
// TLS front) cannot be parked on epoll and keeps its goroutine.
func TestTunnelIdleGoroutines(t *testing.T) {
	cases := []struct {
		name  string
		front func(http.Handler) *httptest.Server
		want  map[Relay]int // relay goroutines per idle tunnel
	}{
		{"tcp", nil, map[Relay]int{RelayGoroutines: 2, RelayPoll: 0}},
		{"tls client", httptest.NewTLSServer, map[Relay]int{RelayGoroutines: 2, RelayPoll: 1}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			EachRelay(t, func(t *testing.T, relay Relay) {
				up := newUpstream(t)
				h := newHarnessWith(t, relay, up.url(), tc.front, nil)
				const n = 6
				cs := make([]*client, n)
				for i := range cs {
					cs[i] = h.dial("/echo", dialOpts{})
				}
				h.waitActive(n)
				want := tc.want[relay] * n
				idle := func(when string) {
					waitFor(t, when, func() bool { return goroutinesIn("tunnel.(*pump).") == want })
				}
				idle("relay goroutines of idle tunnels before traffic")
				for round := range 3 {
					for _, c := range cs {
						payload := bytes.Repeat([]byte{byte(round)}, 100<<10) // past the head window: pooled buffers
						c.write(ws.OpBinary, true, payload)
						if f := c.read(); !bytes.Equal(f.payload, payload) {
							t.Fatalf("echo of %d bytes came back as %d", len(payload), len(f.payload))
						}
					}
				}
				idle("relay goroutines of idle tunnels after traffic")
				dispatchers := goroutinesIn("tunnel.(*pollInstance).dispatch")
				if relay == RelayPoll && dispatchers != 1 || relay == RelayGoroutines && dispatchers != 0 {
					t.Errorf("%d poll dispatchers while tunnels are open on %v", dispatchers, relay)
				}
				for _, c := range cs {
					c.write(ws.OpClose, true, ws.NewCloseFrameBody(ws.StatusNormalClosure, ""))
					c.read()
					c.expectEnd()
				}
				h.waitActive(0)
				waitFor(t, "no dispatcher once every tunnel ended", func() bool {
					return goroutinesIn("tunnel.(*pollInstance).dispatch") == 0
				})
			})
		})
	}
}

// TestRelayString: the relays' names (their subtest names, and the
// configuration's words).
func TestRelayString(t *testing.T) {
	for r, want := range map[Relay]string{RelayGoroutines: "goroutines", RelayPoll: "poll", Relay(7): "Relay(7)"} {
		if got := r.String(); !strings.EqualFold(got, want) {
			t.Errorf("Relay(%d).String() = %q, want %q", int(r), got, want)
		}
	}
}
