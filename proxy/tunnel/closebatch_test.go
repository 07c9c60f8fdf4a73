package tunnel

import (
	"context"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/portcullis-proxy/portcullis/pipeline"
	"github.com/portcullis-proxy/portcullis/rules"
)

// stepLog records the steps of closes in the order the wheel's observe
// hook saw them.
type stepLog struct {
	mu    sync.Mutex
	steps []closeStep
}

func (l *stepLog) note(s closeStep) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.steps = append(l.steps, s)
}

// check fails unless n client Close frames and n upstream Closes were
// seen, every client's before the first upstream's.
func (l *stepLog) check(t *testing.T, n int) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	clients, upstreams := 0, 0
	for i, s := range l.steps {
		switch s {
		case stepClientClose:
			if upstreams > 0 {
				t.Fatalf("step %d: a client's Close after %d upstream Closes had begun; every client's must come first", i, upstreams)
			}
			clients++
		case stepUpstreamClose:
			upstreams++
		}
	}
	if clients != n || upstreams != n {
		t.Fatalf("saw %d client and %d upstream Closes, want %d of each", clients, upstreams, n)
	}
}

// batchHarness opens n idle tunnels whose closes the returned log
// observes; session is every tunnel's session, policy edits the rule's.
func batchHarness(t *testing.T, n int, session func() *pipeline.Session, policy func(*rules.WebSocketPolicy)) (*harness, []*client, chan closeSeen, *stepLog) {
	t.Helper()
	up := newUpstream(t)
	seen := make(chan closeSeen, n)
	up.onConn = func(conn net.Conn) {
		c, err := expectCloseOn(conn)
		if err != nil {
			t.Errorf("upstream: %v", err)
		}
		seen <- c
	}
	h := newHarness(t, up.url())
	steps := &stepLog{}
	h.tunnels.wheel.observe = steps.note
	if policy != nil {
		h.configure(policy)
	}
	h.withSession(session)
	clients := make([]*client, n)
	for i := range clients {
		clients[i] = h.dial("/burst", dialOpts{})
	}
	h.waitActive(n)
	return h, clients, seen, steps
}

// expectAll reads every client's Close and every upstream's and fails
// unless each is code with reason.
func expectAll(t *testing.T, clients []*client, seen chan closeSeen, code ws.StatusCode, reason string) {
	t.Helper()
	for i, c := range clients {
		if got, why := c.expectClose(); got != code || why != reason {
			t.Errorf("client %d got Close %d %q, want %d %q", i, got, why, code, reason)
		}
	}
	for range clients {
		select {
		case us := <-seen:
			if us.code != code {
				t.Errorf("upstream got Close %d, want %d", us.code, code)
			}
		case <-time.After(ioWait):
			t.Fatal("an upstream had no Close")
		}
	}
}

// Many tunnels reaching one session expiry close in one tick: all get
// 1008 "session expired", every client's Close before any upstream's, and
// each is counted as a deadline close.
func TestBatchSessionExpiry(t *testing.T) {
	t.Parallel()
	const n = 60
	expiry := time.Now().Add(4 * time.Second)
	h, clients, seen, steps := batchHarness(t, n,
		func() *pipeline.Session {
			return &pipeline.Session{Subject: "alice", SessionID: "s1", ExpiresAt: expiry}
		},
		func(p *rules.WebSocketPolicy) { p.BindToSession = true })
	if time.Now().After(expiry) {
		t.Fatalf("opening %d tunnels outlasted the session; raise the margin", n)
	}
	expectAll(t, clients, seen, ws.StatusPolicyViolation, "session expired")
	h.waitActive(0)
	steps.check(t, n)
	if got := len(h.metrics.deadlineCloses(ReasonSessionExpired)); got != n {
		t.Errorf("%d deadline closes recorded, want %d", got, n)
	}
	if got := h.metrics.closedWith(ReasonSessionExpired); got != n {
		t.Errorf("closed{session_expired} = %d, want %d", got, n)
	}
}

// Shutdown closes every tunnel in one batch: 1001 "going away" to all,
// every client's first.
func TestBatchShutdown(t *testing.T) {
	t.Parallel()
	const n = 40
	h, clients, seen, steps := batchHarness(t, n,
		func() *pipeline.Session { return &pipeline.Session{Subject: "alice"} }, nil)
	done := make(chan error, 1)
	go func() { done <- h.tunnels.Shutdown(t.Context()) }()
	expectAll(t, clients, seen, ws.StatusGoingAway, "going away")
	if err := <-done; err != nil {
		t.Fatalf("Shutdown = %v", err)
	}
	steps.check(t, n)
	if got := h.metrics.closedWith(ReasonShutdown); got != n {
		t.Errorf("closed{shutdown} = %d, want %d", got, n)
	}
}

// A revocation matching many tunnels closes them in one batch, as does a
// re-check that finds the session rejected.
func TestBatchRevocation(t *testing.T) {
	t.Parallel()
	const n = 40
	t.Run("registry", func(t *testing.T) {
		t.Parallel()
		h, clients, seen, steps := batchHarness(t, n,
			func() *pipeline.Session { return &pipeline.Session{Subject: "alice", SessionID: "s1"} }, nil)
		if got := h.tunnels.Registry().Revoke(Selector{SessionID: "s1"}, "banned"); got != n {
			t.Fatalf("Revoke = %d, want %d", got, n)
		}
		expectAll(t, clients, seen, ws.StatusPolicyViolation, "banned")
		h.waitActive(0)
		steps.check(t, n)
	})
	t.Run("re-check", func(t *testing.T) {
		t.Parallel()
		id := newIdentity(t)
		var checked atomic.Bool
		h, clients, seen, steps := batchHarness(t, n,
			func() *pipeline.Session {
				rv := id.revalidator()
				return &pipeline.Session{Subject: "alice", SessionID: "s1", Authenticator: "cookie_session",
					Revalidator: pipeline.RevalidatorFunc(func(ctx context.Context) (time.Time, error) {
						checked.Store(true)
						return rv.Revalidate(ctx)
					})}
			},
			func(p *rules.WebSocketPolicy) { p.RevalidateEvery = 200 * time.Millisecond })
		id.status.Store(http.StatusUnauthorized)
		expectAll(t, clients, seen, ws.StatusPolicyViolation, "session revoked")
		h.waitActive(0)
		steps.check(t, n)
		if !checked.Load() {
			t.Error("no re-check ran")
		}
	})
}

// A batch large enough to be split between goroutines still runs every
// first step once, all of them before any rest.
func TestWheelSplitBatch(t *testing.T) {
	w := newDeadlineWheel()
	defer w.Stop()
	w.workers = 2
	log := newEventLog()
	at := time.Now().Add(30 * time.Millisecond)
	const n = 3 * batchShare
	for i := range n {
		w.Schedule(&testEntry{name: string(rune('a' + i%26)), log: log}, at)
	}
	log.await(t, 2*n)
	ev := log.snapshot()
	for i, e := range ev {
		if i < n && e[:3] != "due" || i >= n && e[:4] != "rest" {
			t.Fatalf("event %d is %q: every Due must come before the rests", i, e)
		}
	}
	if len(ev) != 2*n || w.Len() != 0 {
		t.Fatalf("%d events, %d entries left; want %d and 0", len(ev), w.Len(), 2*n)
	}
}
