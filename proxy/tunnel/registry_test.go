package tunnel

import (
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/portcullis-proxy/portcullis/pipeline"
)

// fakeChannel is a LiveChannel that records its revocation.
type fakeChannel struct {
	mu     sync.Mutex
	reason string
	n      int
}

func (f *fakeChannel) Describe() ChannelInfo { return ChannelInfo{Kind: "test"} }
func (f *fakeChannel) Revoke(reason string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reason, f.n = reason, f.n+1
}

func TestRegistrySelect(t *testing.T) {
	r := NewRegistry()
	a, b, c := &fakeChannel{}, &fakeChannel{}, &fakeChannel{}
	ida := r.Add(a, ChannelKeys{SessionID: "s1", Subject: "alice", Rule: "chat", Credential: "h1"})
	r.Add(b, ChannelKeys{SessionID: "s1", Subject: "alice", Rule: "feed", Credential: "h2"})
	r.Add(c, ChannelKeys{SessionID: "s2", Subject: "bob", Rule: "chat"})
	tests := []struct {
		sel  Selector
		want []LiveChannel
	}{
		{Selector{}, []LiveChannel{a, b, c}},
		{Selector{SessionID: "s1"}, []LiveChannel{a, b}},
		{Selector{Subject: "bob"}, []LiveChannel{c}},
		{Selector{Rule: "chat"}, []LiveChannel{a, c}},
		{Selector{Rule: "chat", Subject: "alice"}, []LiveChannel{a}},
		{Selector{Credential: "h2"}, []LiveChannel{b}},
		{Selector{SessionID: "s3"}, nil},
		{Selector{SessionID: "s2", Subject: "alice"}, nil},
	}
	for _, tc := range tests {
		got := r.Select(tc.sel)
		if len(got) != len(tc.want) {
			t.Errorf("Select(%+v) = %d channels, want %d", tc.sel, len(got), len(tc.want))
			continue
		}
		for i := range got {
			if got[i] != tc.want[i] {
				t.Errorf("Select(%+v)[%d] is not the expected channel", tc.sel, i)
			}
		}
	}
	r.Remove(ida)
	if got := r.Select(Selector{SessionID: "s1"}); len(got) != 1 || got[0] != b {
		t.Errorf("after Remove, session s1 has %d channels, want only b", len(got))
	}
	if n := r.Revoke(Selector{}, "x"); n != 0 {
		t.Errorf("Revoke with an empty selector closed %d channels, want 0", n)
	}
	if n := r.Revoke(Selector{Subject: "alice"}, "banned"); n != 1 {
		t.Errorf("Revoke(subject alice) = %d, want 1", n)
	}
	waitFor(t, "b revoked", func() bool { b.mu.Lock(); defer b.mu.Unlock(); return b.n == 1 })
	if b.reason != "banned" {
		t.Errorf("reason %q, want banned", b.reason)
	}
	if r.Len() != 2 {
		t.Errorf("Len = %d, want 2", r.Len())
	}
}

func TestCloseReasonText(t *testing.T) {
	long := strings.Repeat("é", 100) // 200 bytes
	got := closeReasonText(long)
	if len(got) > 123 || !strings.HasPrefix(long, got) || len(got) < 121 {
		t.Errorf("closeReasonText cut %d bytes to %d", len(long), len(got))
	}
	if got := closeReasonText("session revoked"); got != "session revoked" {
		t.Errorf("short reason changed to %q", got)
	}
}

// TestTunnelRevokeBySelector: tunnels are registered with their session's
// keys and described; a revocation closes exactly the matching ones, with
// 1008 and the reason, to the client and the upstream; every tunnel that
// ends leaves the registry.
func TestTunnelRevokeBySelector(t *testing.T) { EachRelay(t, testTunnelRevokeBySelector) }

func testTunnelRevokeBySelector(t *testing.T, relay Relay) {
	t.Parallel()
	up, seen := closingUpstream(t)
	h := newHarness(t, relay, up.url())
	h.configure(func(p *pipeline.WebSocketPolicy) { p.AllowedOrigins = map[string]bool{"http://app.test": true} })
	h.withSession(func() *pipeline.Session {
		return &pipeline.Session{Subject: "alice", SessionID: "sess-a", CredentialID: "cred-a"}
	})
	a1 := h.dial("/a1", dialOpts{header: http.Header{"Origin": {"http://app.test"}}})
	a2 := h.dial("/a2", dialOpts{})
	h.withSession(func() *pipeline.Session { return &pipeline.Session{Subject: "bob", SessionID: "sess-b"} })
	b := h.dial("/b", dialOpts{})
	h.waitActive(3)

	reg := h.tunnels.Registry()
	infos := reg.Select(Selector{SessionID: "sess-a"})
	if len(infos) != 2 {
		t.Fatalf("session sess-a has %d tunnels, want 2", len(infos))
	}
	ds := reg.Describe(Selector{SessionID: "sess-a"})
	if len(ds) != 2 || ds[0].ID == "" || ds[0].ID == ds[1].ID {
		t.Fatalf("Describe = %+v, want two entries with distinct ids", ds)
	}
	// The registry lists in no promised order: a1 is the one that sent an
	// Origin.
	d := ds[0]
	if ds[1].Origin != "" {
		d = ds[1]
	}
	if d.Kind != "websocket" || d.Rule != "rule-1" || d.Subject != "alice" || d.SessionID != "sess-a" ||
		d.Origin != "http://app.test" || d.ClientAddress == "" || d.OpenedAt.IsZero() ||
		d.NextDeadline == nil || d.NextDeadlineReason == "" {
		t.Errorf("Describe = %+v", d)
	}

	if n := reg.Revoke(Selector{SessionID: "sess-a"}, strings.Repeat("x", 300)); n != 2 {
		t.Fatalf("Revoke closed %d, want 2", n)
	}
	for _, c := range []*client{a1, a2} {
		code, reason := c.expectClose()
		if code != ws.StatusPolicyViolation || len(reason) != 123 {
			t.Errorf("client got Close %d with a %d-byte reason, want 1008 with 123 bytes", code, len(reason))
		}
	}
	for range 2 {
		if us := <-seen; us.code != ws.StatusPolicyViolation {
			t.Errorf("upstream got Close %d, want 1008", us.code)
		}
	}
	h.waitActive(1)
	waitFor(t, "registry holds one tunnel", func() bool { return reg.Len() == 1 })
	h.metrics.wantClosed(t, ReasonSessionRevoked, 2)
	// The other subject's tunnel was untouched; a revocation by subject
	// reaches it.
	if n := reg.Revoke(Selector{Subject: "bob"}, ""); n != 1 {
		t.Fatalf("Revoke(subject bob) closed %d, want 1", n)
	}
	b.expectCloseWith(ws.StatusPolicyViolation, "session revoked")
	<-seen
	h.waitActive(0)
}

// revocations records what the tunnels report and refuses one session.
type revocations struct {
	mu       sync.Mutex
	revoked  string
	rejected []string
}

func (r *revocations) Revoked(sessionID, subject string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return sessionID != "" && sessionID == r.revoked
}

func (r *revocations) Rejected(sessionID, subject, rule string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.rejected = append(r.rejected, sessionID+"/"+subject+"/"+rule)
}

// TestTunnelRechecksCoalesced: the tunnels of one session make one
// identity-provider call per interval between them; a rejection closes all
// of them at once and is reported once; a revoked session is refused at
// the upgrade.
func TestTunnelRechecksCoalesced(t *testing.T) { EachRelay(t, testTunnelRechecksCoalesced) }

func testTunnelRechecksCoalesced(t *testing.T, relay Relay) {
	t.Parallel()
	id := newIdentity(t)
	up, seen := closingUpstream(t)
	rev := &revocations{revoked: "gone"}
	h := newHarnessWith(t, relay, up.url(), nil, func(o *Options) { o.Revocations = rev })
	const interval = 300 * time.Millisecond
	h.configure(func(p *pipeline.WebSocketPolicy) { p.RevalidateEvery = interval })
	h.withSession(func() *pipeline.Session {
		return &pipeline.Session{Subject: "alice", SessionID: "s1", Authenticator: "cookie_session", Revalidator: id.revalidator()}
	})
	const n = 20
	clients := make([]*client, n)
	for i := range clients {
		clients[i] = h.dial("/c", dialOpts{})
	}
	h.waitActive(n)
	if g := h.tunnels.checks.count(); g != 1 {
		t.Fatalf("%d re-check groups for one session, want 1", g)
	}
	start := id.calls.Load()
	time.Sleep(3 * interval)
	// Three intervals: at most 3 calls (4 with a boundary), not 3 × 20.
	if calls := id.calls.Load() - start; calls < 2 || calls > 4 {
		t.Errorf("%d identity-provider calls in 3 intervals for %d tunnels of one session, want about 3", calls, n)
	}

	id.status.Store(http.StatusUnauthorized)
	for _, c := range clients {
		c.expectCloseWith(ws.StatusPolicyViolation, "session revoked")
	}
	for range n {
		<-seen
	}
	h.waitActive(0)
	rev.mu.Lock()
	if len(rev.rejected) != 1 || rev.rejected[0] != "s1/alice/rule-1" {
		t.Errorf("rejections reported: %q, want one for s1/alice/rule-1", rev.rejected)
	}
	rev.mu.Unlock()

	h.withSession(func() *pipeline.Session { return &pipeline.Session{Subject: "alice", SessionID: "gone"} })
	_, err := h.tryDial("/revoked", dialOpts{})
	var ref *refusal
	if !errors.As(err, &ref) || ref.status != http.StatusUnauthorized {
		t.Fatalf("upgrade with a revoked session: %v, want 401", err)
	}
	if m := ref.message(); !strings.Contains(m, "session revoked") {
		t.Errorf("refusal body %q", m)
	}
}

// TestTunnelRecheckUnavailableGrace: tolerate_unavailable keeps a tunnel
// through failed re-checks only for unavailable_grace.
func TestTunnelRecheckUnavailableGrace(t *testing.T) { EachRelay(t, testTunnelRecheckUnavailableGrace) }

func testTunnelRecheckUnavailableGrace(t *testing.T, relay Relay) {
	t.Parallel()
	h, _, _ := toleratingHarness(t, relay, 400*time.Millisecond, "s1")
	start := time.Now()
	c := h.dial("/grace", dialOpts{})
	c.expectCloseWith(ws.StatusPolicyViolation, "session could not be revalidated")
	if d := time.Since(start); d < 400*time.Millisecond {
		t.Errorf("closed after %v, before the 400ms grace", d)
	}
}
