package tunnel

import (
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/portcullis-proxy/portcullis/pipeline"
	"github.com/portcullis-proxy/portcullis/rules"
)

// Leading a burst of fixed deadlines (lead.go).

// leadEntry records when the wheel called its Due, and with what now.
type leadEntry struct {
	at       time.Time // its deadline
	mu       sync.Mutex
	calledAt time.Time // wall clock at Due
	now      time.Time // what Due was given
	calls    int
	order    *atomic.Int64
	seq      int64
	done     chan<- *leadEntry
}

func (e *leadEntry) Due(now time.Time) func() {
	e.mu.Lock()
	e.calledAt, e.now, e.calls = time.Now(), now, e.calls+1
	if e.order != nil {
		e.seq = e.order.Add(1)
	}
	e.mu.Unlock()
	e.done <- e
	return nil
}

// inSlot returns an instant about d ahead whose slot holds at least the
// next 5 ms, so that deadlines spread over a few ms share one slot.
func inSlot(d time.Duration) time.Time {
	k := leadSlotOf(time.Now().Add(d)) + 1
	return time.Unix(0, k*int64(leadSlot)).Add(time.Millisecond)
}

// setCost sets the wheel's estimate of a client step, as if measured,
// and sets its timer by it.
func setCost(w *deadlineWheel, d time.Duration) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.est.cost, w.est.measured = d, true
	w.armLocked()
}

// scheduleAll puts n entries on w, due at at plus i*spread, in a shuffled
// order, fixed or not, and returns them with the channel their Dues
// report on.
func scheduleAll(w *deadlineWheel, n int, at time.Time, spread time.Duration, fixed bool) ([]*leadEntry, chan *leadEntry) {
	done := make(chan *leadEntry, n)
	order := &atomic.Int64{}
	es := make([]*leadEntry, n)
	for i := range es {
		es[i] = &leadEntry{at: at.Add(time.Duration(i) * spread), order: order, done: done}
	}
	for _, i := range rand.Perm(n) {
		if fixed {
			w.scheduleFixed(es[i], es[i].at)
		} else {
			w.Schedule(es[i], es[i].at)
		}
	}
	return es, done
}

// awaitDues waits for n Due calls.
func awaitDues(t *testing.T, done <-chan *leadEntry, n int) {
	t.Helper()
	for i := range n {
		select {
		case <-done:
		case <-time.After(ioWait):
			t.Fatalf("%d of %d entries fell due", i, n)
		}
	}
}

// dueBurst sets w's estimate of a client step to 10 ms (high: a burst of
// leadMin fixed deadlines would be led by up to the bound), puts n entries
// on it, all due at one instant about d ahead, fixed or not, and waits
// for their Dues.
func dueBurst(t *testing.T, w *deadlineWheel, n int, d time.Duration, fixed bool) []*leadEntry {
	t.Helper()
	setCost(w, 10*time.Millisecond)
	es, done := scheduleAll(w, n, inSlot(d), 0, fixed)
	awaitDues(t, done, n)
	return es
}

// wantNoneEarly fails for each entry whose Due was called, or given a now,
// before its deadline.
func wantNoneEarly(t *testing.T, es []*leadEntry) {
	t.Helper()
	for i, e := range es {
		e.mu.Lock()
		if e.calledAt.Before(e.at) || e.now.Before(e.at) {
			t.Errorf("entry %d: Due %v before its deadline (now given %v before), want never early", i, e.at.Sub(e.calledAt), e.at.Sub(e.now))
		}
		e.mu.Unlock()
	}
}

// A burst of fixed deadlines at least leadMin strong is collected ahead
// of them, but no entry more than the bound before its own deadline; the
// entries go earliest deadline first, each told its own deadline as now.
func TestLeadLargeBurstStartsEarlyWithinBound(t *testing.T) {
	const bound = 300 * time.Millisecond
	w := newLeadWheel(bound)
	defer w.Stop()
	w.workers = 1
	setCost(w, 10*time.Millisecond) // a lead far over the bound: the bound decides
	const n = 600
	at := inSlot(time.Second)
	es, done := scheduleAll(w, n, at, 5*time.Microsecond, true) // 3 ms of deadlines in one slot
	awaitDues(t, done, n)

	var first time.Time
	for i, e := range es {
		e.mu.Lock()
		if e.calls != 1 {
			t.Errorf("entry %d: Due called %d times, want once", i, e.calls)
		}
		if floor := e.at.Add(-bound); e.calledAt.Before(floor) {
			t.Errorf("entry %d: Due %v before its deadline, more than the bound %v", i, e.at.Sub(e.calledAt), bound)
		}
		if !e.now.Equal(e.at) {
			t.Errorf("entry %d: Due given now %v after its deadline, want its deadline", i, e.now.Sub(e.at))
		}
		if e.seq != int64(i+1) {
			t.Errorf("entry %d (by deadline) had its Due %d-th: want earliest deadline first", i, e.seq)
		}
		if first.IsZero() || e.calledAt.Before(first) {
			first = e.calledAt
		}
		e.mu.Unlock()
	}
	if !first.Before(at) {
		t.Errorf("the burst began %v after its first deadline, want before it (led)", first.Sub(at))
	}
	if w.Len() != 0 {
		t.Errorf("%d entries left on the wheel", w.Len())
	}
}

// A burst under leadMin keeps its deadlines exactly: no Due before them,
// however high the estimate.
func TestLeadSmallBurstNotEarly(t *testing.T) {
	w := newLeadWheel(time.Second)
	defer w.Stop()
	wantNoneEarly(t, dueBurst(t, w, leadMin-1, 200*time.Millisecond, true))
}

// With the lead off (a bound of 0 or less: CloseLead negative, the
// configuration's websocket_close_lead 0s), a large burst of fixed
// deadlines keeps them exactly.
func TestLeadOffNeverEarly(t *testing.T) {
	for _, bound := range []time.Duration{-1, 0} {
		t.Run("bound "+bound.String(), func(t *testing.T) {
			w := newLeadWheel(bound)
			defer w.Stop()
			wantNoneEarly(t, dueBurst(t, w, 2*leadMin, 200*time.Millisecond, true))
		})
	}
}

// Deadlines not scheduled as fixed — the idle deadline, re-checks, the
// close grace — are never early, however many share an instant; a
// channel's idle deadline goes on the wheel as such, its session expiry
// and max lifetime as fixed.
func TestLeadNotForIdleDeadlines(t *testing.T) {
	w := newLeadWheel(time.Second)
	defer w.Stop()
	wantNoneEarly(t, dueBurst(t, w, 2*leadMin, 300*time.Millisecond, false))

	owner := &Server{wheel: w}
	now := time.Now()
	idle := rules.DefaultWebSocketPolicy().WebSocketPolicy
	idle.IdleTimeout = time.Minute
	noIdle := idle
	noIdle.IdleTimeout = 0
	for _, tc := range []struct {
		name      string
		policy    pipeline.WebSocketPolicy
		max, exp  time.Time
		wantFixed bool
	}{
		{"idle first", idle, now.Add(time.Hour), now.Add(2 * time.Hour), false},
		{"session expiry first", idle, now.Add(time.Hour), now.Add(30 * time.Second), true},
		{"max lifetime first", idle, now.Add(30 * time.Second), time.Time{}, true},
		{"no idle timeout", noIdle, time.Time{}, now.Add(time.Hour), true},
	} {
		b := &binding{owner: owner, maxAt: tc.max, expiresAt: tc.exp}
		b.pol.Store(&tc.policy)
		b.lastActive.Store(now.UnixNano())
		e := &leadEntry{done: make(chan *leadEntry, 1)}
		b.mu.Lock()
		b.scheduleNextLocked(e)
		b.mu.Unlock()
		w.mu.Lock()
		it := w.byEntry[e]
		w.mu.Unlock()
		if it == nil || it.fixed != tc.wantFixed {
			t.Errorf("%s: on the wheel as %+v, want fixed %v", tc.name, it, tc.wantFixed)
		}
		w.Remove(e)
	}
}

// A revocation is not a deadline: its batch runs at once, whatever burst
// of fixed deadlines is pending, and leaves that burst where it was.
func TestLeadNotForRevocations(t *testing.T) {
	w := newLeadWheel(100 * time.Millisecond)
	defer w.Stop()
	at := inSlot(2 * time.Second)
	pending, _ := scheduleAll(w, 2*leadMin, at, 0, true)
	ran := 0
	start := time.Now()
	w.batch(leadMin, func(int) func() { ran++; return nil })
	if ran != leadMin {
		t.Fatalf("the revocation's batch ran %d first steps before returning, want %d", ran, leadMin)
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("the revocation's batch took %v: it must not wait for a burst's lead", took)
	}
	if got := w.Len(); got != len(pending) {
		t.Errorf("%d entries on the wheel after the revocation, want the %d pending", got, len(pending))
	}
	w.mu.Lock()
	s := w.slots[leadSlotOf(at)]
	w.mu.Unlock()
	if s == nil || s.n != len(pending) {
		t.Errorf("the pending burst's slot is %+v, want %d fixed deadlines", s, len(pending))
	}
}

// The estimate follows what batches measured: the first replaces the
// default, later ones move it by a quarter of their difference, batches
// that wrote fewer than estimateMin Close frames do not count; the lead
// of the next burst follows it.
func TestLeadEstimateAdapts(t *testing.T) {
	w := newLeadWheel(time.Second)
	defer w.Stop()
	w.workers = 1
	cost := func() (time.Duration, bool) {
		w.mu.Lock()
		defer w.mu.Unlock()
		return w.est.cost, w.est.measured
	}
	if c, m := cost(); c != defaultStepCost || m {
		t.Fatalf("before any batch: cost %v (measured %v), want the default %v", c, m, defaultStepCost)
	}
	// spin runs a batch of n steps taking each about d, writing a Close
	// frame each when write.
	spin := func(n int, d time.Duration, write bool) {
		w.batch(n, func(int) func() {
			for end := time.Now().Add(d); time.Now().Before(end); {
			}
			if write {
				w.wrote.Add(1)
			}
			return nil
		})
	}
	const step = 200 * time.Microsecond
	spin(100, step, true)
	slow, m := cost()
	if !m || slow < step || slow > 50*step {
		t.Fatalf("after 100 steps of %v: cost %v (measured %v), want about %v", step, slow, m, step)
	}
	spin(estimateMin-1, 0, true)
	spin(2*estimateMin, 0, false)
	if c, _ := cost(); c != slow {
		t.Fatalf("batches writing fewer than %d Close frames moved the cost from %v to %v", estimateMin, slow, c)
	}
	spin(100, 0, true)
	fast, _ := cost()
	if fast >= slow || fast < slow*3/4 {
		t.Fatalf("after a batch of fast steps: cost %v, want between %v and %v (a quarter of the way down)", fast, slow*3/4, slow)
	}

	// The next burst starts its estimated time early.
	const n = 600
	lead := fast * n
	at := inSlot(time.Second)
	es, done := scheduleAll(w, n, at, 0, true)
	awaitDues(t, done, n)
	first := es[0].calledAt
	for _, e := range es {
		if e.calledAt.Before(first) {
			first = e.calledAt
		}
	}
	if early := at.Sub(first); early > lead || early <= 0 {
		t.Errorf("the burst began %v early, want within its estimated %v", early, lead)
	}
}

// Real tunnels: many at one session expiry, their lead over the bound,
// each client gets its 1008 "session expired" no more than the bound
// early, and some early (the metric says so with a negative lateness).
func TestLeadTunnelsAtOneExpiry(t *testing.T) { EachRelay(t, testLeadTunnelsAtOneExpiry) }

func testLeadTunnelsAtOneExpiry(t *testing.T, relay Relay) {
	t.Parallel()
	const n = leadMin + 44
	expiry := time.Now().Add(6 * time.Second)
	h, clients, seen, steps := batchHarness(t, relay, n,
		func() *pipeline.Session {
			return &pipeline.Session{Subject: "alice", SessionID: "s1", ExpiresAt: expiry}
		},
		func(p *pipeline.WebSocketPolicy) { p.BindToSession = true })
	setCost(h.tunnels.wheel, 10*time.Millisecond)
	if time.Now().After(expiry.Add(-DefaultCloseLead)) {
		t.Fatalf("opening %d tunnels outlasted the session; raise the margin", n)
	}
	expectAll(t, clients, seen, ws.StatusPolicyViolation, "session expired")
	h.waitActive(0)
	steps.check(t, n)
	late := h.metrics.deadlineCloses(ReasonSessionExpired)
	if len(late) != n {
		t.Fatalf("%d deadline closes recorded, want %d", len(late), n)
	}
	earliest := late[0]
	for _, l := range late {
		earliest = min(earliest, l)
	}
	if earliest < -DefaultCloseLead {
		t.Errorf("a Close was written %v early, more than the bound %v", -earliest, DefaultCloseLead)
	}
	if earliest >= 0 {
		t.Errorf("earliest Close %v after the expiry: the burst was not led", earliest)
	}
}
