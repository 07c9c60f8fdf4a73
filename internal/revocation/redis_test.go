package revocation

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portcullis-proxy/portcullis/testsupport/redistest"
)

// recordingCloser records what a replica was asked to close.
type recordingCloser struct {
	mu  sync.Mutex
	got []string
}

func (c *recordingCloser) CloseMatching(sessionID, subject, rule, reason string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.got = append(c.got, sessionID+"|"+subject+"|"+rule+"|"+reason)
	return 1
}

func (c *recordingCloser) seen() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.got...)
}

type countingChannelMetrics struct {
	mu      sync.Mutex
	results map[string]int
	states  []bool
}

func (m *countingChannelMetrics) ChannelState(up bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.states = append(m.states, up)
}
func (m *countingChannelMetrics) ChannelLag(time.Duration) {}
func (m *countingChannelMetrics) Published(r string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.results[r]++
}
func (m *countingChannelMetrics) count(r string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.results[r]
}

type replica struct {
	svc    *Service
	closer *recordingCloser
	ch     *Redis
}

func startReplica(t *testing.T, url string, m ChannelMetrics) replica {
	t.Helper()
	ch, err := NewRedis(RedisOptions{URL: url, Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	c := &recordingCloser{}
	svc := New(Options{Closer: c, Channel: ch})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { svc.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done; ch.Close() })
	return replica{svc, c, ch}
}

func eventually(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func has(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// TestRedisChannelAcrossReplicas: with a real redis-server, a revocation on
// one replica reaches the others (closing and tombstoning there, never
// twice on its own replica); one made while Redis is down applies locally
// at once and reaches the others once Redis is back, on the same port.
func TestRedisChannelAcrossReplicas(t *testing.T) {
	rd := redistest.Start(t)
	m := &countingChannelMetrics{results: map[string]int{}}
	a := startReplica(t, rd.URL(), m)
	b := startReplica(t, rd.URL(), nil)
	c := startReplica(t, rd.URL(), nil)

	if n := a.svc.Revoke(Event{SessionID: "s1", Reason: "bye"}); n != 1 {
		t.Fatalf("local closes %d, want 1", n)
	}
	for name, r := range map[string]replica{"b": b, "c": c} {
		eventually(t, "replica "+name+" closes s1", 10*time.Second, func() bool { return has(r.closer.seen(), "s1|||bye") })
		if !r.svc.Revoked("s1", "") {
			t.Errorf("replica %s has no tombstone for s1", name)
		}
	}
	time.Sleep(200 * time.Millisecond)
	if got := a.closer.seen(); len(got) != 1 {
		t.Errorf("replica a applied its own revocation %d times, want once: %q", len(got), got)
	}

	rd.Stop()
	a.svc.Revoke(Event{Subject: "mallory", Source: SourceAdmin})
	if !has(a.closer.seen(), "|mallory||") || !a.svc.Revoked("", "mallory") {
		t.Fatal("with Redis down the revocation did not apply locally at once")
	}
	eventually(t, "publish retried", 10*time.Second, func() bool { return m.count("retry") > 0 })
	eventually(t, "channel reported down", 10*time.Second, func() bool { return !a.ch.Up() })
	if has(b.closer.seen(), "|mallory||") {
		t.Fatal("replica b learnt the revocation while Redis was down")
	}
	if err := rd.Restart(); err != nil {
		t.Fatal(err)
	}
	for name, r := range map[string]replica{"b": b, "c": c} {
		eventually(t, "replica "+name+" catches up after Redis restart", 15*time.Second, func() bool { return has(r.closer.seen(), "|mallory||") })
	}
	eventually(t, "channel reported up", 10*time.Second, func() bool { return a.ch.Up() })

	// A replica started later learns recent tombstones from the stream.
	d := startReplica(t, rd.URL(), nil)
	eventually(t, "a late replica learns the tombstones", 10*time.Second, func() bool {
		return d.svc.Revoked("s1", "") && d.svc.Revoked("", "mallory")
	})
}

func TestRedisURLPasswordNotInErrors(t *testing.T) {
	_, err := NewRedis(RedisOptions{URL: "redis://user:s3cretpw@127.0.0.1:bad/0"})
	if err == nil {
		t.Fatal("bad URL accepted")
	}
	if strings.Contains(err.Error(), "s3cretpw") {
		t.Errorf("error shows the password: %v", err)
	}
}

func TestTombstones(t *testing.T) {
	c := &recordingCloser{}
	s := New(Options{Closer: c, MaxTombstones: 2, TombstoneTTL: time.Hour})
	s.Revoke(Event{SessionID: "a", Until: time.Now().Add(time.Minute)})
	s.Revoke(Event{SessionID: "b", Until: time.Now().Add(2 * time.Minute)})
	s.Revoke(Event{SessionID: "c"})
	if s.Tombstones() != 2 || s.Revoked("a", "") || !s.Revoked("b", "") || !s.Revoked("c", "") {
		t.Errorf("bounded tombstones: %d kept, a=%v b=%v c=%v; want the soonest-ending (a) forgotten",
			s.Tombstones(), s.Revoked("a", ""), s.Revoked("b", ""), s.Revoked("c", ""))
	}
	s.Revoke(Event{Rule: "chat"})
	if s.Tombstones() != 2 {
		t.Error("a rule revocation left a tombstone")
	}
	s.Revoke(Event{SessionID: "old", Until: time.Now().Add(-time.Second)})
	if s.Revoked("old", "") {
		t.Error("a session that already expired is remembered")
	}
	if n := s.Revoke(Event{}); n != 0 || len(c.seen()) != 5 {
		t.Errorf("an empty revocation was applied")
	}
}

// TestRevokedSeparatesSessionsFromSubjects: a session id and a subject
// that are the same string are different tombstones, and the lookup every
// decision makes allocates nothing, whatever the ids' length.
func TestRevokedSeparatesSessionsFromSubjects(t *testing.T) {
	s := New(Options{Closer: &recordingCloser{}})
	id := "9b4d3c5e-2f61-4a7b-8c9d-0e1f2a3b4c5d" // a Kratos session id's length
	s.Revoke(Event{SessionID: id})
	if !s.Revoked(id, "") || s.Revoked("", id) || s.Revoked("other", "") {
		t.Errorf("session %q revoked: as session %v, as subject %v, other %v; want true, false, false",
			id, s.Revoked(id, ""), s.Revoked("", id), s.Revoked("other", ""))
	}
	s.Revoke(Event{Subject: "alice"})
	if !s.Revoked("", "alice") || s.Revoked("alice", "") {
		t.Error("subject alice: want revoked as a subject only")
	}
	if a := testing.AllocsPerRun(100, func() { s.Revoked(id+"", "someone-else-with-a-long-subject-name") }); a != 0 {
		t.Errorf("Revoked allocates %.0f times per call, want 0", a)
	}
}
