package tunnel

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/portcullis-proxy/portcullis/pipeline"
)

// identity is a real HTTP endpoint in the shape of a whoami call: 200 with
// the session's expires_at, 401 once the session is revoked, 503 when the
// identity provider is down. Its revalidator sends the credential the way
// an authenticator does.
type identity struct {
	srv     *httptest.Server
	status  atomic.Int32
	expires atomic.Int64 // unix nanoseconds of expires_at; 0: none
	calls   atomic.Int32
}

func newIdentity(t *testing.T) *identity {
	id := &identity{}
	id.status.Store(http.StatusOK)
	id.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id.calls.Add(1)
		if c, err := r.Cookie("ory_kratos_session"); err != nil || c.Value != "secret-token" {
			http.Error(w, "no session", http.StatusUnauthorized)
			return
		}
		status := int(id.status.Load())
		if status != http.StatusOK {
			http.Error(w, http.StatusText(status), status)
			return
		}
		var body struct {
			ExpiresAt *time.Time `json:"expires_at,omitempty"`
		}
		if e := id.expires.Load(); e != 0 {
			at := time.Unix(0, e)
			body.ExpiresAt = &at
		}
		_ = json.NewEncoder(w).Encode(body)
	}))
	t.Cleanup(id.srv.Close)
	return id
}

// revalidator re-checks the session at the identity endpoint.
func (id *identity) revalidator() pipeline.Revalidator {
	return pipeline.RevalidatorFunc(func(ctx context.Context) (pipeline.Identity, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, id.srv.URL+"/sessions/whoami", nil)
		if err != nil {
			return pipeline.Identity{}, err
		}
		req.AddCookie(&http.Cookie{Name: "ory_kratos_session", Value: "secret-token"})
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return pipeline.Identity{}, pipeline.Unavailable("identity provider unreachable", err)
		}
		defer resp.Body.Close()
		switch resp.StatusCode {
		case http.StatusOK:
			var body struct {
				ExpiresAt time.Time `json:"expires_at"`
			}
			if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
				return pipeline.Identity{}, pipeline.Unavailable("identity provider answered garbage", err)
			}
			return pipeline.Identity{Subject: "alice", ExpiresAt: body.ExpiresAt}, nil
		case http.StatusUnauthorized, http.StatusForbidden:
			return pipeline.Identity{}, pipeline.Unauthorized("session is no longer valid", nil)
		default:
			return pipeline.Identity{}, pipeline.Unavailable("identity provider answered "+resp.Status, nil)
		}
	})
}

// closingUpstream is an upstream whose connections wait for the proxy's
// Close, answer it and report it.
func closingUpstream(t *testing.T) (*upstream, chan closeSeen) {
	up := newUpstream(t)
	seen := make(chan closeSeen, 16)
	up.onConn = func(conn net.Conn) {
		c, err := expectCloseOn(conn)
		if err != nil {
			t.Errorf("upstream: %v", err)
			c = closeSeen{}
		}
		seen <- c
	}
	return up, seen
}

func TestTunnelDeadlines(t *testing.T) { EachRelay(t, testTunnelDeadlines) }

func testTunnelDeadlines(t *testing.T, relay Relay) {
	t.Parallel()
	tests := []struct {
		name       string
		policy     func(p *pipeline.WebSocketPolicy)
		session    func(id *identity) *pipeline.Session
		idStatus   int
		wantReason string
		wantLabel  string
		// deadline bounds the close: it must come before deadline+ioWait.
		deadline time.Duration
	}{
		{
			name:       "max lifetime",
			policy:     func(p *pipeline.WebSocketPolicy) { p.MaxLifetime = 300 * time.Millisecond },
			wantReason: "max lifetime reached",
			wantLabel:  ReasonMaxLifetime,
			deadline:   300 * time.Millisecond,
		},
		{
			name: "session expiry",
			session: func(*identity) *pipeline.Session {
				return &pipeline.Session{Subject: "alice", ExpiresAt: time.Now().Add(300 * time.Millisecond)}
			},
			wantReason: "session expired",
			wantLabel:  ReasonSessionExpired,
			deadline:   300 * time.Millisecond,
		},
		{
			name:   "session expiry ignored when not bound",
			policy: func(p *pipeline.WebSocketPolicy) { p.BindToSession = false; p.MaxLifetime = 800 * time.Millisecond },
			session: func(*identity) *pipeline.Session {
				return &pipeline.Session{Subject: "alice", ExpiresAt: time.Now().Add(100 * time.Millisecond)}
			},
			wantReason: "max lifetime reached",
			wantLabel:  ReasonMaxLifetime,
			deadline:   800 * time.Millisecond,
		},
		{
			name:       "revocation found by re-validation",
			policy:     func(p *pipeline.WebSocketPolicy) { p.RevalidateEvery = 200 * time.Millisecond },
			idStatus:   http.StatusUnauthorized,
			wantReason: "session revoked",
			wantLabel:  ReasonSessionRevoked,
			deadline:   200 * time.Millisecond,
		},
		{
			name:       "identity provider unavailable at re-validation",
			policy:     func(p *pipeline.WebSocketPolicy) { p.RevalidateEvery = 200 * time.Millisecond },
			idStatus:   http.StatusServiceUnavailable,
			wantReason: "session could not be revalidated",
			wantLabel:  ReasonRevalidationUnavailable,
			deadline:   200 * time.Millisecond,
		},
		{
			name:       "idle timeout",
			policy:     func(p *pipeline.WebSocketPolicy) { p.IdleTimeout = 300 * time.Millisecond },
			wantReason: "idle timeout",
			wantLabel:  ReasonIdleTimeout,
			deadline:   300 * time.Millisecond,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			id := newIdentity(t)
			if tc.idStatus != 0 {
				id.status.Store(int32(tc.idStatus))
			}
			up, seen := closingUpstream(t)
			h := newHarness(t, relay, up.url())
			if tc.policy != nil {
				h.configure(tc.policy)
			}
			h.withSession(func() *pipeline.Session {
				s := &pipeline.Session{Subject: "alice"}
				if tc.session != nil {
					s = tc.session(id)
				}
				s.Revalidator = id.revalidator()
				return s
			})
			start := time.Now()
			c := h.dial("/deadline", dialOpts{})
			c.expectCloseWith(ws.StatusPolicyViolation, tc.wantReason)
			var us closeSeen
			select {
			case us = <-seen:
			case <-time.After(ioWait):
				t.Fatal("upstream saw no Close")
			}
			if us.code != ws.StatusPolicyViolation || us.reason != tc.wantReason {
				t.Errorf("upstream got Close %d %q, want 1008 %q", us.code, us.reason, tc.wantReason)
			}
			if late := time.Since(start) - tc.deadline; late > ioWait {
				t.Errorf("closed %v after the deadline", late)
			}
			c.expectEnd()
			h.waitActive(0)
			h.metrics.wantClosed(t, tc.wantLabel, 1)
			late := h.metrics.deadlineCloses(tc.wantLabel)
			switch tc.wantLabel {
			case ReasonMaxLifetime, ReasonSessionExpired, ReasonIdleTimeout:
				// Recorded once the client's Close is written: the
				// client's reply, relayed to the upstream, can end the
				// tunnel before that line runs.
				waitFor(t, "the deadline close metric", func() bool { return len(h.metrics.deadlineCloses(tc.wantLabel)) > 0 })
				late = h.metrics.deadlineCloses(tc.wantLabel)
				if len(late) != 1 || late[0] < 0 {
					t.Errorf("deadline closes recorded for %q: %v, want one, not early", tc.wantLabel, late)
				}
			default:
				if len(late) != 0 {
					t.Errorf("deadline closes recorded for %q: %v, want none (not a deadline)", tc.wantLabel, late)
				}
			}
			if logs := h.logs.String(); strings.Contains(logs, "secret-token") {
				t.Errorf("the credential appears in the logs:\n%s", logs)
			}
		})
	}
}

// toleratingHarness returns a harness over a closing upstream (seen) whose
// rule re-validates every 50 ms and tolerates an unavailable identity
// provider (for grace; 0: the default), and the identity provider (id)
// its sessions (subject alice, sessionID) re-validate with: it answers 503.
func toleratingHarness(t *testing.T, relay Relay, grace time.Duration, sessionID string) (h *harness, id *identity, seen chan closeSeen) {
	id = newIdentity(t)
	id.status.Store(http.StatusServiceUnavailable)
	up, seen := closingUpstream(t)
	h = newHarness(t, relay, up.url())
	h.configure(func(p *pipeline.WebSocketPolicy) {
		p.RevalidateEvery = 50 * time.Millisecond
		p.TolerateUnavailable = true
		if grace > 0 {
			p.UnavailableGrace = grace
		}
	})
	h.withSession(func() *pipeline.Session {
		return &pipeline.Session{Subject: "alice", SessionID: sessionID, Revalidator: id.revalidator()}
	})
	return h, id, seen
}

func TestTunnelRevalidationToleratedUnavailable(t *testing.T) {
	EachRelay(t, testTunnelRevalidationToleratedUnavailable)
}

func testTunnelRevalidationToleratedUnavailable(t *testing.T, relay Relay) {
	t.Parallel()
	h, id, seen := toleratingHarness(t, relay, 0, "")
	c := h.dial("/tolerate", dialOpts{})
	waitFor(t, "three re-validations", func() bool { return id.calls.Load() >= 3 })
	if h.tunnels.Active() != 1 {
		t.Fatalf("tunnel closed while the identity provider was down and the rule tolerates it")
	}
	if !strings.Contains(h.logs.String(), "tunnel kept open") {
		t.Errorf("tolerated failure not logged")
	}
	// Tolerance is for unavailability only: a rejection still ends it.
	id.status.Store(http.StatusUnauthorized)
	c.expectCloseWith(ws.StatusPolicyViolation, "session revoked")
	if us := <-seen; us.reason != "session revoked" {
		t.Errorf("upstream got Close %q, want \"session revoked\"", us.reason)
	}
}

// TestTunnelRevalidationMovesExpiry: the expiry the identity provider
// reports at re-validation replaces the one the tunnel started with.
func TestTunnelRevalidationMovesExpiry(t *testing.T) { EachRelay(t, testTunnelRevalidationMovesExpiry) }

func testTunnelRevalidationMovesExpiry(t *testing.T, relay Relay) {
	t.Parallel()
	id := newIdentity(t)
	id.expires.Store(time.Now().Add(time.Hour).UnixNano())
	up := newUpstream(t)
	h := newHarness(t, relay, up.url())
	h.configure(func(p *pipeline.WebSocketPolicy) { p.RevalidateEvery = 50 * time.Millisecond })
	initialExpiry := time.Now().Add(2 * time.Second)
	h.withSession(func() *pipeline.Session {
		return &pipeline.Session{Subject: "alice", ExpiresAt: initialExpiry, Revalidator: id.revalidator()}
	})
	c := h.dial("/extend", dialOpts{})
	waitFor(t, "a re-validation", func() bool { return id.calls.Load() >= 1 })
	if time.Now().After(initialExpiry) {
		t.Skip("the machine is too slow to re-validate before the initial expiry")
	}
	time.Sleep(time.Until(initialExpiry) + 200*time.Millisecond)
	if h.tunnels.Active() != 1 {
		t.Fatalf("tunnel closed at the initial expiry though re-validation extended it")
	}
	c.write(ws.OpText, true, []byte("still here"))
	if f := c.read(); string(f.payload) != "still here" {
		t.Fatalf("echo = %q", f.payload)
	}
	// The session is shortened: the tunnel follows.
	id.expires.Store(time.Now().Add(100 * time.Millisecond).UnixNano())
	c.expectCloseWith(ws.StatusPolicyViolation, "session expired")
}

// TestTunnelPingsAreTraffic: a tunnel carrying only pings is not idle.
func TestTunnelPingsAreTraffic(t *testing.T) { EachRelay(t, testTunnelPingsAreTraffic) }

func testTunnelPingsAreTraffic(t *testing.T, relay Relay) {
	t.Parallel()
	up := newUpstream(t)
	h := newHarness(t, relay, up.url())
	h.configure(func(p *pipeline.WebSocketPolicy) { p.IdleTimeout = 1500 * time.Millisecond })
	c := h.dial("/ping", dialOpts{})
	for end := time.Now().Add(3 * time.Second); time.Now().Before(end); {
		c.write(ws.OpPing, true, []byte("are you there"))
		if f := c.read(); f.h.OpCode != ws.OpPong {
			t.Fatalf("answer to ping = %v, want pong", f.h.OpCode)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if h.tunnels.Active() != 1 {
		t.Fatalf("tunnel carrying pings was closed as idle")
	}
	c.expectCloseWith(ws.StatusPolicyViolation, "idle timeout")
}

// TestTunnelCloseBetweenFrames: a deadline reached while a frame is half
// relayed sends the Close after that frame, never inside it.
func TestTunnelCloseBetweenFrames(t *testing.T) { EachRelay(t, testTunnelCloseBetweenFrames) }

func testTunnelCloseBetweenFrames(t *testing.T, relay Relay) {
	t.Parallel()
	up := newUpstream(t)
	got := make(chan []frame, 1)
	up.onConn = func(conn net.Conn) {
		var frames []frame
		for {
			_ = conn.SetReadDeadline(time.Now().Add(ioWait))
			f, err := readFrameFrom(conn)
			if err != nil {
				break
			}
			frames = append(frames, f)
			if f.h.OpCode == ws.OpClose {
				_ = ws.WriteFrame(conn, ws.NewCloseFrame(f.payload))
				break
			}
		}
		got <- frames
	}
	h := newHarness(t, relay, up.url())
	h.configure(func(p *pipeline.WebSocketPolicy) {
		p.MaxLifetime = 300 * time.Millisecond
		p.CloseGrace = ioWait
	})
	c := h.dial("/boundary", dialOpts{})

	payload := bytes.Repeat([]byte("half and half "), 5000)
	wire, err := ws.CompileFrame(ws.MaskFrameInPlace(ws.NewBinaryFrame(append([]byte(nil), payload...))))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.conn.Write(wire[:len(wire)/2]); err != nil {
		t.Fatal(err)
	}
	// The client's side is between frames: its Close arrives.
	f := c.read()
	if f.h.OpCode != ws.OpClose {
		t.Fatalf("client got %v, want Close", f.h.OpCode)
	}
	if _, err := c.conn.Write(wire[len(wire)/2:]); err != nil {
		t.Fatal(err)
	}
	c.write(ws.OpClose, true, f.payload)

	frames := <-got
	if len(frames) != 2 {
		t.Fatalf("upstream received %d frames, want the binary frame then Close", len(frames))
	}
	if frames[0].h.OpCode != ws.OpBinary || !bytes.Equal(frames[0].payload, payload) {
		t.Errorf("first frame: %v of %d bytes, want the whole binary frame of %d", frames[0].h.OpCode, len(frames[0].payload), len(payload))
	}
	if code, reason := ws.ParseCloseFrameData(frames[1].payload); frames[1].h.OpCode != ws.OpClose || code != ws.StatusPolicyViolation || reason != "max lifetime reached" {
		t.Errorf("second frame: %v %d %q, want Close 1008 \"max lifetime reached\"", frames[1].h.OpCode, code, reason)
	}
	c.expectEnd()
}

// TestTunnelCloseGrace: peers that do not answer the proxy's Close are cut
// off when the grace ends.
func TestTunnelCloseGrace(t *testing.T) { EachRelay(t, testTunnelCloseGrace) }

func testTunnelCloseGrace(t *testing.T, relay Relay) {
	t.Parallel()
	up := newUpstream(t)
	up.onConn = func(conn net.Conn) {
		// Reads everything, answers nothing.
		_ = conn.SetReadDeadline(time.Now().Add(ioWait))
		_, _ = conn.Read(make([]byte, 1024))
		_, _ = conn.Read(make([]byte, 1024))
	}
	h := newHarness(t, relay, up.url())
	h.configure(func(p *pipeline.WebSocketPolicy) {
		p.MaxLifetime = 100 * time.Millisecond
		p.CloseGrace = 300 * time.Millisecond
	})
	c := h.dial("/silent", dialOpts{})
	if f := c.read(); f.h.OpCode != ws.OpClose {
		t.Fatalf("client got %v, want Close", f.h.OpCode)
	}
	// No answer from the client either.
	c.expectEnd()
	h.waitActive(0)
	h.metrics.wantClosed(t, ReasonMaxLifetime, 1)
}

// TestTunnelStalledFrame: a peer that starts a frame and never finishes it
// holds the other side's writes; the proxy's Close waits for the frame, but
// not forever.
func TestTunnelStalledFrame(t *testing.T) { EachRelay(t, testTunnelStalledFrame) }

func testTunnelStalledFrame(t *testing.T, relay Relay) {
	t.Parallel()
	up := newUpstream(t)
	got := make(chan error, 1)
	up.onConn = func(conn net.Conn) {
		_ = conn.SetReadDeadline(time.Now().Add(ioWait + closeSendLimit))
		f, err := readFrameFrom(conn)
		if err == nil {
			err = fmt.Errorf("upstream got a whole %v frame", f.h.OpCode)
		}
		got <- err
	}
	h := newHarness(t, relay, up.url())
	h.configure(func(p *pipeline.WebSocketPolicy) {
		p.MaxLifetime = 200 * time.Millisecond
		p.CloseGrace = 100 * time.Millisecond
	})
	c := h.dial("/stalled", dialOpts{})
	// Half a frame, then silence: the upstream's side is mid-frame.
	wire, err := ws.CompileFrame(ws.MaskFrameInPlace(ws.NewBinaryFrame(make([]byte, 1000))))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.conn.Write(wire[:500]); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if f := c.read(); f.h.OpCode != ws.OpClose {
		t.Fatalf("client got %v, want Close", f.h.OpCode)
	}
	c.expectEnd()
	h.waitActive(0)
	if d := time.Since(start); d > closeSendLimit+ioWait {
		t.Errorf("the stalled tunnel took %v to end", d)
	}
	// The upstream saw the frame cut short, never a Close inside it.
	if err := <-got; !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("upstream: %v, want the frame cut short", err)
	}
}

// testEntry records when the wheel called Due and ran its rest.
type testEntry struct {
	name   string
	log    *eventLog
	noRest bool
	onDue  func(now time.Time)
}

type eventLog struct {
	mu     sync.Mutex
	events []string
	done   chan string
}

func newEventLog() *eventLog { return &eventLog{done: make(chan string, 10000)} }

func (l *eventLog) add(s string) {
	l.mu.Lock()
	l.events = append(l.events, s)
	l.mu.Unlock()
	l.done <- s
}

func (l *eventLog) snapshot() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.events...)
}

func (e *testEntry) Due(now time.Time) func() {
	e.log.add("due " + e.name)
	if e.onDue != nil {
		e.onDue(now)
	}
	if e.noRest {
		return nil
	}
	return func() { e.log.add("rest " + e.name) }
}

// await reads n events or fails after a bound generous for a loaded
// machine (the point is that they come, not how fast).
func (l *eventLog) await(t *testing.T, n int) {
	t.Helper()
	for range n {
		select {
		case <-l.done:
		case <-time.After(10 * time.Second):
			t.Fatalf("events so far: %v", l.snapshot())
		}
	}
}

// newTestWheel returns a wheel, stopped when the test ends, and the log
// its testEntries record their calls in.
func newTestWheel(t *testing.T) (*deadlineWheel, *eventLog) {
	w := newDeadlineWheel()
	t.Cleanup(w.Stop)
	return w, newEventLog()
}

// Entries due at one instant all get their Due before any rest runs, and
// each its Due once, also when the batch is split between goroutines.
func TestWheelDueBeforeRest(t *testing.T) {
	for _, tc := range []struct {
		name       string
		workers, n int
	}{
		{"one goroutine", 1, 500},
		{"split between two", 2, 3 * batchShare},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w, log := newTestWheel(t)
			w.workers = tc.workers
			at := time.Now().Add(30 * time.Millisecond)
			n := tc.n
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
			if len(ev) != 2*n {
				t.Fatalf("%d events, want %d", len(ev), 2*n)
			}
			if w.Len() != 0 {
				t.Fatalf("%d entries left on the wheel", w.Len())
			}
		})
	}
}

// Entries fall due in the order of their times; a rescheduled entry at
// its new time; a removed one never.
func TestWheelScheduleRescheduleRemove(t *testing.T) {
	w, log := newTestWheel(t)
	now := time.Now()
	a := &testEntry{name: "a", log: log, noRest: true}
	b := &testEntry{name: "b", log: log, noRest: true}
	c := &testEntry{name: "c", log: log, noRest: true}
	gone := &testEntry{name: "gone", log: log, noRest: true}
	w.Schedule(a, now.Add(60*time.Millisecond))
	w.Schedule(b, now.Add(20*time.Millisecond))
	w.Schedule(c, now.Add(time.Hour))
	w.Schedule(gone, now.Add(10*time.Millisecond))
	w.Remove(gone)
	w.Schedule(c, now.Add(100*time.Millisecond)) // moved earlier
	w.Schedule(b, now.Add(40*time.Millisecond))  // moved later
	log.await(t, 3)
	if got := log.snapshot(); len(got) != 3 || got[0] != "due b" || got[1] != "due a" || got[2] != "due c" {
		t.Fatalf("order = %v, want b, a, c", got)
	}
	w.Remove(gone) // not on the wheel: no effect
	if w.Len() != 0 {
		t.Fatalf("%d entries left", w.Len())
	}
}

// An entry may put itself back on the wheel from its Due (a tunnel whose
// idle deadline moved), and it falls due again.
func TestWheelDueReschedules(t *testing.T) {
	w, log := newTestWheel(t)
	var times atomic.Int32
	e := &testEntry{name: "e", log: log, noRest: true}
	e.onDue = func(now time.Time) {
		if times.Add(1) < 3 {
			w.Schedule(e, now.Add(10*time.Millisecond))
		}
	}
	w.Schedule(e, time.Now().Add(10*time.Millisecond))
	log.await(t, 3)
	time.Sleep(50 * time.Millisecond)
	if n := times.Load(); n != 3 {
		t.Fatalf("Due called %d times, want 3", n)
	}
}

// A stopped wheel calls nothing and takes nothing.
func TestWheelStop(t *testing.T) {
	w, log := newTestWheel(t)
	w.Schedule(&testEntry{name: "x", log: log}, time.Now().Add(20*time.Millisecond))
	w.Stop()
	w.Schedule(&testEntry{name: "y", log: log}, time.Now())
	time.Sleep(100 * time.Millisecond)
	if got := log.snapshot(); len(got) != 0 || w.Len() != 0 {
		t.Fatalf("after Stop: events %v, %d entries", got, w.Len())
	}
}

// Many goroutines scheduling, rescheduling and removing at once (-race).
func TestWheelConcurrent(t *testing.T) {
	w, log := newTestWheel(t)
	var wg sync.WaitGroup
	const n = 200
	var kept atomic.Int32
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e := &testEntry{name: "c", log: log, noRest: true}
			for j := range 20 {
				w.Schedule(e, time.Now().Add(time.Duration(j)*time.Millisecond+time.Second))
			}
			if i%2 == 0 {
				w.Remove(e)
			} else {
				kept.Add(1)
			}
		}()
	}
	wg.Wait()
	log.await(t, int(kept.Load()))
	time.Sleep(100 * time.Millisecond)
	if got := len(log.snapshot()); got != int(kept.Load()) {
		t.Fatalf("%d Due calls, want %d (removed entries must not fall due)", got, kept.Load())
	}
}
