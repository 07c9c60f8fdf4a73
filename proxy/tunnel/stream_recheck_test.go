package tunnel

import (
	"bufio"
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/portcullis-proxy/portcullis/pipeline"
	"github.com/portcullis-proxy/portcullis/rules"
)

// TestStreamSharesTunnelRecheck: a stream and WebSocket tunnels of one
// session are one re-check group making one identity-provider call per
// interval between them; the rejection ends the stream (final event) and
// the tunnels (1008) together.
func TestStreamSharesTunnelRecheck(t *testing.T) { EachRelay(t, testStreamSharesTunnelRecheck) }

func testStreamSharesTunnelRecheck(t *testing.T, relay Relay) {
	id := newIdentity(t)
	up, _ := closingUpstream(t)
	h := newHarness(t, relay, up.url())
	const interval = 300 * time.Millisecond
	h.configure(func(p *pipeline.WebSocketPolicy) { p.RevalidateEvery = interval })
	session := func() *pipeline.Session {
		return &pipeline.Session{Subject: "alice", SessionID: "s1", Authenticator: "cookie_session", Revalidator: id.revalidator()}
	}
	h.withSession(session)
	clients := []*client{h.dial("/a", dialOpts{}), h.dial("/b", dialOpts{})}
	h.waitActive(2)

	sse := StreamUpstream(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, sse.URL+"/sse", nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	policy := rules.DefaultWebSocketPolicy().WebSocketPolicy
	policy.RevalidateEvery = interval
	body := h.tunnels.GovernStream(StreamRequest{RuleID: "rule-1", Policy: policy, Session: session(), Response: res, Cancel: cancel})
	defer body.Close()
	if g := h.tunnels.checks.count(); g != 1 {
		t.Fatalf("%d re-check groups for one session's tunnels and stream, want 1", g)
	}
	start := id.calls.Load()
	time.Sleep(3 * interval)
	if calls := id.calls.Load() - start; calls < 2 || calls > 4 {
		t.Errorf("%d identity-provider calls in 3 intervals for 2 tunnels and a stream of one session, want about 3", calls)
	}
	id.status.Store(http.StatusUnauthorized)
	for _, c := range clients {
		c.expectCloseWith(ws.StatusPolicyViolation, "session revoked")
	}
	var last string
	sc := bufio.NewScanner(body)
	for sc.Scan() {
		if l := sc.Text(); strings.HasPrefix(l, "event: ") || strings.HasPrefix(l, "data: ") {
			last = l
		}
	}
	if sc.Err() != nil || !strings.Contains(last, `"reason":"session_revoked"`) {
		t.Errorf("stream ended with %v, last line %q; want the final event for session_revoked", sc.Err(), last)
	}
}
