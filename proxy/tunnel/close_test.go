package tunnel

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/portcullis-proxy/portcullis/pipeline"
)

func TestTunnelShutdown(t *testing.T) { EachRelay(t, testTunnelShutdown) }

func testTunnelShutdown(t *testing.T, relay Relay) {
	up, seen := closingUpstream(t)
	h := newHarness(t, relay, up.url())
	var clients []*client
	for i := range 3 {
		clients = append(clients, h.dial(fmt.Sprintf("/s%d", i), dialOpts{}))
	}
	h.waitActive(3)

	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), ioWait)
		defer cancel()
		done <- h.tunnels.Shutdown(ctx)
	}()
	for i, c := range clients {
		if code, reason := c.expectClose(); code != ws.StatusGoingAway || reason != "going away" {
			t.Errorf("client %d got Close %d %q, want 1001 \"going away\"", i, code, reason)
		}
	}
	for range clients {
		if us := <-seen; us.code != ws.StatusGoingAway {
			t.Errorf("upstream got Close %d, want 1001", us.code)
		}
	}
	if err := <-done; err != nil {
		t.Errorf("Shutdown = %v, want nil once every tunnel closed", err)
	}
	if n := h.tunnels.Active(); n != 0 {
		t.Errorf("active tunnels after Shutdown = %d", n)
	}
	h.metrics.wantClosed(t, ReasonShutdown, 3)
	_, err := h.tryDial("/late", dialOpts{})
	var ref *refusal
	if !errors.As(err, &ref) || ref.status != http.StatusServiceUnavailable {
		t.Fatalf("upgrade after Shutdown: %v, want 503", err)
	}
	if want := "503 Service Unavailable: shutting down"; ref.message() != want {
		t.Errorf("refusal = %q, want %q", ref.message(), want)
	}
}

// TestTunnelShutdownDeadline: peers that do not answer are cut off when
// the shutdown context ends.
func TestTunnelShutdownDeadline(t *testing.T) { EachRelay(t, testTunnelShutdownDeadline) }

func testTunnelShutdownDeadline(t *testing.T, relay Relay) {
	up := newUpstream(t)
	up.onConn = func(conn net.Conn) {
		_ = conn.SetReadDeadline(time.Now().Add(ioWait))
		_, _ = io.Copy(io.Discard, conn) // never answers
	}
	h := newHarness(t, relay, up.url())
	h.configure(func(p *pipeline.WebSocketPolicy) { p.CloseGrace = time.Hour })
	c := h.dial("/stubborn", dialOpts{})
	h.waitActive(1)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := h.tunnels.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown = %v, want the context's deadline", err)
	}
	if f := c.read(); f.h.OpCode != ws.OpClose {
		t.Errorf("client got %v, want Close", f.h.OpCode)
	}
	c.expectEnd()
	h.waitActive(0)
}

func TestTunnelPeerGoesAway(t *testing.T) { EachRelay(t, testTunnelPeerGoesAway) }

func testTunnelPeerGoesAway(t *testing.T, relay Relay) {
	tests := []struct {
		name       string
		upstream   func(conn net.Conn) // after the first frame was echoed
		client     func(c *client)
		wantReason string
	}{
		{
			name:       "upstream dies mid-stream",
			upstream:   func(conn net.Conn) { conn.Close() },
			client:     func(c *client) { c.expectEnd() },
			wantReason: ReasonUpstreamGone,
		},
		{
			name: "client dies mid-stream",
			upstream: func(conn net.Conn) {
				_ = conn.SetReadDeadline(time.Now().Add(ioWait))
				_, _ = io.Copy(io.Discard, conn)
			},
			client:     func(c *client) { c.conn.Close() },
			wantReason: ReasonClientGone,
		},
		{
			name: "upstream closes",
			upstream: func(conn net.Conn) {
				_ = ws.WriteFrame(conn, ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusNormalClosure, "done")))
				_ = conn.SetReadDeadline(time.Now().Add(ioWait))
				if f, err := readFrameFrom(conn); err != nil || f.h.OpCode != ws.OpClose {
					return
				}
			},
			client: func(c *client) {
				c.expectCloseWith(ws.StatusNormalClosure, "done")
				c.expectEnd()
			},
			wantReason: ReasonUpstreamClosed,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			up := newUpstream(t)
			ended := make(chan struct{})
			up.onConn = func(conn net.Conn) {
				defer close(ended)
				_ = conn.SetReadDeadline(time.Now().Add(ioWait))
				f, err := readFrameFrom(conn)
				if err != nil {
					return
				}
				_ = ws.WriteFrame(conn, ws.NewTextFrame(f.payload))
				tc.upstream(conn)
			}
			h := newHarness(t, relay, up.url())
			c := h.dial("/away", dialOpts{})
			c.t = t
			c.write(ws.OpText, true, []byte("first"))
			if f := c.read(); string(f.payload) != "first" {
				t.Fatalf("echo = %q", f.payload)
			}
			tc.client(c)
			select {
			case <-ended:
			case <-time.After(ioWait):
				t.Fatal("the upstream's connection did not end")
			}
			h.waitActive(0)
			h.metrics.wantClosed(t, tc.wantReason, 1)
		})
	}
}

// TestTunnelNoLeaks opens and closes 1,000 tunnels, ended in every way a
// tunnel ends, and checks that goroutines and open files return to where
// they were.
func TestTunnelNoLeaks(t *testing.T) { EachRelay(t, testTunnelNoLeaks) }

func testTunnelNoLeaks(t *testing.T, relay Relay) {
	if testing.Short() {
		t.Skip("opens 1,000 tunnels")
	}
	up := newUpstream(t)
	h := newHarness(t, relay, up.url())
	h.configure(func(p *pipeline.WebSocketPolicy) {
		p.CloseGrace = 200 * time.Millisecond
		p.IdleTimeout = 100 * time.Millisecond
	})
	// Warm up whatever starts lazily.
	c := h.dial("/warm", dialOpts{})
	c.write(ws.OpClose, true, ws.NewCloseFrameBody(ws.StatusNormalClosure, ""))
	c.read()
	h.waitActive(0)
	waitFor(t, "the warm-up upstream connection to end", func() bool { return up.endedConns() == 1 })

	baseG, baseFD := runtime.NumGoroutine(), OpenFDs(t)
	const total, parallel = 1000, 25
	EachAtMost(total, parallel, func(i int) {
		c, err := h.tryDial("/leak", dialOpts{})
		if err != nil {
			t.Errorf("dial %d: %v", i, err)
			return
		}
		defer c.conn.Close()
		c.t = noFatal{t}
		switch i % 4 {
		// The client's own writes may find the tunnel already ended by
		// the 100 ms idle timeout on a busy machine; what this test
		// judges is what is left afterwards, so their errors are ignored.
		case 0: // Close handshake started by the client
			_ = ws.WriteFrame(c.conn, ws.MaskFrameInPlace(ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusNormalClosure, ""))))
			_, _ = readFrameFrom(c.rd)
		case 1: // the client vanishes mid-stream
			_ = ws.WriteFrame(c.conn, ws.MaskFrameInPlace(ws.NewTextFrame([]byte("x"))))
			c.conn.Close()
			return
		case 2: // idle timeout, answered (unless the grace already ran out on a busy machine)
			_, _ = readFrameFrom(c.rd)
			_ = ws.WriteFrame(c.conn, ws.MaskFrameInPlace(ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusPolicyViolation, ""))))
		case 3: // idle timeout, never answered: cut off at the grace
			_, _ = readFrameFrom(c.rd)
		}
		_ = c.conn.SetReadDeadline(time.Now().Add(ioWait))
		_, _ = io.Copy(io.Discard, c.conn)
	})
	h.waitActive(0)
	waitFor(t, "every upstream connection to end", func() bool { return up.endedConns() == total+1 })
	deadline := time.Now().Add(ioWait)
	for {
		g, fd := runtime.NumGoroutine(), OpenFDs(t)
		if g <= baseG && fd <= baseFD {
			break
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			n := runtime.Stack(buf, true)
			t.Fatalf("after %d tunnels: %d goroutines (baseline %d), %d open files (baseline %d)\n%s", total, g, baseG, fd, baseFD, buf[:n])
		}
		time.Sleep(20 * time.Millisecond)
	}
	h.metrics.mu.Lock()
	defer h.metrics.mu.Unlock()
	if h.metrics.opened != total+1 {
		t.Errorf("opened %d tunnels, want %d", h.metrics.opened, total+1)
	}
	sum := 0
	for _, n := range h.metrics.closed {
		sum += n
	}
	if sum != total+1 {
		t.Errorf("closed %d tunnels (%v), want %d", sum, h.metrics.closed, total+1)
	}
}

// noFatal reports failures of helper calls made off the test goroutine
// without stopping that goroutine.
type noFatal struct{ testing.TB }

func (n noFatal) Fatalf(format string, args ...any) { n.Errorf(format, args...) }

func TestCloseFrame(t *testing.T) {
	long := closeCause{reason: "x", code: ws.StatusPolicyViolation, text: strings.Repeat("r", 200)}
	tests := []struct {
		name       string
		cause      *closeCause
		masked     bool
		wantReason string
	}{
		{name: "to the client", cause: &causeMaxLifetime, masked: false, wantReason: "max lifetime reached"},
		{name: "to the upstream", cause: &causeSessionRevoked, masked: true, wantReason: "session revoked"},
		{name: "going away", cause: &causeShutdown, masked: true, wantReason: "going away"},
		{name: "reason cut to fit a control frame", cause: &long, masked: false, wantReason: strings.Repeat("r", 123)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := closeFrame(nil, tc.cause, tc.masked)
			f, err := readFrameFrom(bytes.NewReader(b))
			if err != nil {
				t.Fatalf("closeFrame(%q) does not parse: %v", tc.cause.text, err)
			}
			code, reason := ws.ParseCloseFrameData(f.payload)
			if f.h.OpCode != ws.OpClose || !f.h.Fin || f.h.Masked != tc.masked || code != tc.cause.code || reason != tc.wantReason {
				t.Errorf("closeFrame = (%v fin %v masked %v %d %q), want (Close fin true masked %v %d %q)",
					f.h.OpCode, f.h.Fin, f.h.Masked, code, reason, tc.masked, tc.cause.code, tc.wantReason)
			}
			if err := ws.CheckHeader(f.h, ws.StateServerSide); tc.masked && err != nil {
				t.Errorf("masked Close rejected by a server: %v", err)
			}
		})
	}
	a, b := closeFrame(nil, &causeShutdown, true), closeFrame(nil, &causeShutdown, true)
	if bytes.Equal(a[2:6], b[2:6]) {
		t.Errorf("two masked Close frames share the masking key %x", a[2:6])
	}
}

// The batch path (closebatch.go).

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
func batchHarness(t *testing.T, relay Relay, n int, session func() *pipeline.Session, policy func(*pipeline.WebSocketPolicy)) (*harness, []*client, chan closeSeen, *stepLog) {
	t.Helper()
	up, seen := closingUpstream(t)
	h := newHarness(t, relay, up.url())
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
func TestBatchSessionExpiry(t *testing.T) { EachRelay(t, testBatchSessionExpiry) }

func testBatchSessionExpiry(t *testing.T, relay Relay) {
	t.Parallel()
	const n = 60
	expiry := time.Now().Add(4 * time.Second)
	h, clients, seen, steps := batchHarness(t, relay, n,
		func() *pipeline.Session {
			return &pipeline.Session{Subject: "alice", SessionID: "s1", ExpiresAt: expiry}
		},
		func(p *pipeline.WebSocketPolicy) { p.BindToSession = true })
	if time.Now().After(expiry) {
		t.Fatalf("opening %d tunnels outlasted the session; raise the margin", n)
	}
	expectAll(t, clients, seen, ws.StatusPolicyViolation, "session expired")
	h.waitActive(0)
	steps.check(t, n)
	if got := len(h.metrics.deadlineCloses(ReasonSessionExpired)); got != n {
		t.Errorf("%d deadline closes recorded, want %d", got, n)
	}
	h.metrics.wantClosed(t, ReasonSessionExpired, n)
}

// Shutdown closes every tunnel in one batch: 1001 "going away" to all,
// every client's first.
func TestBatchShutdown(t *testing.T) { EachRelay(t, testBatchShutdown) }

func testBatchShutdown(t *testing.T, relay Relay) {
	t.Parallel()
	const n = 40
	h, clients, seen, steps := batchHarness(t, relay, n,
		func() *pipeline.Session { return &pipeline.Session{Subject: "alice"} }, nil)
	done := make(chan error, 1)
	go func() { done <- h.tunnels.Shutdown(t.Context()) }()
	expectAll(t, clients, seen, ws.StatusGoingAway, "going away")
	if err := <-done; err != nil {
		t.Fatalf("Shutdown = %v", err)
	}
	steps.check(t, n)
	h.metrics.wantClosed(t, ReasonShutdown, n)
}

// A revocation matching many tunnels closes them in one batch, as does a
// re-check that finds the session rejected.
func TestBatchRevocation(t *testing.T) { EachRelay(t, testBatchRevocation) }

func testBatchRevocation(t *testing.T, relay Relay) {
	t.Parallel()
	const n = 40
	t.Run("registry", func(t *testing.T) {
		t.Parallel()
		h, clients, seen, steps := batchHarness(t, relay, n,
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
		h, clients, seen, steps := batchHarness(t, relay, n,
			func() *pipeline.Session {
				return &pipeline.Session{Subject: "alice", SessionID: "s1", Authenticator: "cookie_session",
					Revalidator: id.revalidator()}
			},
			func(p *pipeline.WebSocketPolicy) { p.RevalidateEvery = 200 * time.Millisecond })
		id.status.Store(http.StatusUnauthorized)
		expectAll(t, clients, seen, ws.StatusPolicyViolation, "session revoked")
		h.waitActive(0)
		steps.check(t, n)
		if id.calls.Load() == 0 {
			t.Error("no re-check reached the identity provider")
		}
	})
}
