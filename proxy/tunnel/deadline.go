package tunnel

import (
	"container/heap"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Deadlines. A live channel's deadlines — max lifetime, session expiry
// (bind_to_session) and the idle deadline (last traffic plus
// idle_timeout) — are one entry on the server's [deadlineWheel], due at
// the earliest of them; once a tunnel's close has begun, the same entry is
// due at the end of its closing handshake (the close grace). The re-check
// groups of sessions ([rechecks]) are entries of the same wheel. Traffic
// does not touch the wheel: when the entry falls due, Due finds the idle
// deadline moved and schedules the entry again. A live channel holds no
// runtime timer of its own. A burst of fixed deadlines (max lifetime,
// session expiry) shared by many entries is collected ahead of them, by
// at most the lead bound (lead.go).

// wheelEntry is something a [deadlineWheel] ends when its due time comes:
// a [tunnel], a session-bound [stream] or a re-check group.
type wheelEntry interface {
	// Due is called at (or just after) the entry's due time, now being the
	// instant the wheel collected it, as one of the first steps of a
	// [deadlineWheel.batch]: it does the urgent part — for a tunnel, the
	// client's Close frame — and must not block. It returns the rest,
	// which the wheel runs off its goroutine once every entry collected at
	// the same tick had its Due; nil when there is nothing more (the entry
	// found nothing due and may have rescheduled itself).
	//
	// An entry scheduled with scheduleFixed may be collected up to the
	// wheel's lead bound before its due time, as part of a burst (lead.go);
	// Due is then given its due time as now, and is to end the entry for
	// the fixed deadline that falls due then.
	Due(now time.Time) (rest func())
}

// deadlineWheel keeps the due times of many entries behind one runtime
// timer. At each tick it collects every entry that is due and runs them
// as one [deadlineWheel.batch]: their Due back to back, and only then the
// rest of each close, so that entries falling due together (one session's
// tabs, a common expiry) get their first step out at the cost of those
// steps alone rather than behind each other's teardown.
//
// Schedule, Remove and Due may be called from any goroutine; Due may call
// Schedule or Remove for its own entry (the wheel holds no lock while it
// runs).
type deadlineWheel struct {
	mu      sync.Mutex
	items   wheelHeap
	byEntry map[wheelEntry]*wheelItem
	timer   *time.Timer
	armedAt time.Time // the instant the timer is set for; zero: stopped
	stopped bool

	// first is held (for writing) while a batch runs its first steps:
	// AwaitFirstSteps waits on it.
	first sync.RWMutex
	// workers is how many goroutines share a large batch's first steps
	// (GOMAXPROCS when the wheel was made).
	workers int
	// observe, when set, is told of each step of a close as it is taken
	// (see closeStep); tests set it before the wheel holds an entry.
	observe func(closeStep)

	// slots counts the fixed deadlines on the wheel by slot, big holds
	// those slots that are led (at least leadMin), est the estimate of a
	// client step's time (lead.go); all guarded by mu.
	slots map[int64]*slotCount
	big   map[int64]*slotCount
	est   leadEstimate
	// wrote counts the client Close frames written in first steps, so
	// that a batch knows how many it wrote (batches' first steps never
	// overlap: they hold first).
	wrote atomic.Int64
}

// newDeadlineWheel returns an empty wheel with the default lead bound
// ([DefaultCloseLead]). Its timer runs only while it holds entries.
func newDeadlineWheel() *deadlineWheel { return newLeadWheel(DefaultCloseLead) }

// newLeadWheel returns an empty wheel whose bursts of fixed deadlines
// start up to bound early (lead.go); bound 0 or less: never early.
func newLeadWheel(bound time.Duration) *deadlineWheel {
	w := &deadlineWheel{
		byEntry: map[wheelEntry]*wheelItem{},
		workers: runtime.GOMAXPROCS(0),
		slots:   map[int64]*slotCount{},
		big:     map[int64]*slotCount{},
		est:     leadEstimate{bound: max(bound, 0), cost: defaultStepCost},
	}
	w.timer = time.AfterFunc(time.Hour, w.tick)
	w.timer.Stop()
	return w
}

// Schedule adds e due at at, or moves it there if it is on the wheel. e
// falls due at at, never before.
func (w *deadlineWheel) Schedule(e wheelEntry, at time.Time) { w.schedule(e, at, false) }

// scheduleFixed is Schedule for a fixed deadline (max lifetime, session
// expiry): when many entries share it, e may be collected up to the lead
// bound before at (lead.go).
func (w *deadlineWheel) scheduleFixed(e wheelEntry, at time.Time) { w.schedule(e, at, true) }

func (w *deadlineWheel) schedule(e wheelEntry, at time.Time, fixed bool) {
	fixed = fixed && w.est.bound > 0
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.stopped {
		return
	}
	if it, ok := w.byEntry[e]; ok {
		if it.fixed {
			w.countLocked(it.at, -1)
		}
		it.at, it.fixed = at, fixed
		heap.Fix(&w.items, int(it.index))
	} else {
		it := &wheelItem{e: e, at: at, fixed: fixed}
		w.byEntry[e] = it
		heap.Push(&w.items, it)
	}
	if fixed {
		w.countLocked(at, 1)
	}
	w.armLocked()
}

// Remove takes e off the wheel; it is not an error when it is not on it.
func (w *deadlineWheel) Remove(e wheelEntry) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if it, ok := w.byEntry[e]; ok {
		heap.Remove(&w.items, int(it.index))
		delete(w.byEntry, e)
		if it.fixed {
			w.countLocked(it.at, -1)
		}
		w.armLocked()
	}
}

// Len reports how many entries are on the wheel.
func (w *deadlineWheel) Len() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.items)
}

// Stop drops every entry and stops the timer; later Schedules do nothing.
func (w *deadlineWheel) Stop() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.stopped = true
	w.items = nil
	clear(w.byEntry)
	clear(w.slots)
	clear(w.big)
	w.timer.Stop()
	w.armedAt = time.Time{}
}

// armLocked sets the timer to the earliest entry, or to the start of a
// led burst when that comes first; w.mu is held.
func (w *deadlineWheel) armLocked() {
	if len(w.items) == 0 {
		if !w.armedAt.IsZero() {
			w.timer.Stop()
			w.armedAt = time.Time{}
		}
		return
	}
	next := w.items[0].at
	if lead := w.nextLeadLocked(); !lead.IsZero() && lead.Before(next) {
		next = lead
	}
	if next.Equal(w.armedAt) {
		return
	}
	w.armedAt = next
	w.timer.Reset(time.Until(next))
}

// tick collects every entry of a burst whose lead has begun, and the due
// entries, and runs them as one batch, earliest deadline first. A due
// entry's Due is given the tick's instant, a led one's its own due time.
func (w *deadlineWheel) tick() {
	now := time.Now()
	w.mu.Lock()
	w.armedAt = time.Time{}
	// The led bursts first, whole: their entries already due would
	// otherwise leave their slots under leadMin.
	due := w.collectLedLocked(now)
	led := len(due)
	for len(w.items) > 0 && !w.items[0].at.After(now) {
		it := heap.Pop(&w.items).(*wheelItem)
		delete(w.byEntry, it.e)
		if it.fixed {
			w.countLocked(it.at, -1)
		}
		due = append(due, it)
	}
	if led > 0 && len(due) > led {
		slices.SortStableFunc(due, func(a, b *wheelItem) int { return a.at.Compare(b.at) })
	}
	w.armLocked()
	w.mu.Unlock()
	w.batch(len(due), func(i int) func() { return due[i].e.Due(later(now, due[i].at)) })
}

// later returns the later of a and b.
func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// wheelItem is one entry on the wheel: due at at; fixed when at is a fixed
// deadline counted in the slots (lead.go).
type wheelItem struct {
	e     wheelEntry
	at    time.Time
	index int32
	fixed bool
}

// wheelHeap is a min-heap of items by due time.
type wheelHeap []*wheelItem

func (h wheelHeap) Len() int           { return len(h) }
func (h wheelHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h wheelHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = int32(i), int32(j)
}
func (h *wheelHeap) Push(x any) {
	it := x.(*wheelItem)
	it.index = int32(len(*h))
	*h = append(*h, it)
}
func (h *wheelHeap) Pop() any {
	old := *h
	it := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return it
}

// idleAt returns the idle deadline, zero without idle_timeout.
func (b *binding) idleAt() time.Time {
	if idle := b.policy().IdleTimeout; idle > 0 {
		return time.Unix(0, b.lastActive.Load()).Add(idle)
	}
	return time.Time{}
}

// earliest tracks the earliest of a set of deadlines, zero ones ignored.
type earliest struct {
	at  time.Time
	why string
}

func (e *earliest) consider(d time.Time, why string) {
	if !d.IsZero() && (e.at.IsZero() || d.Before(e.at)) {
		e.at, e.why = d, why
	}
}

// nextLocked returns the earliest of max lifetime, session expiry (when
// bound) and the idle deadline, with its reason; zero when none is set.
// b.mu is held.
func (b *binding) nextLocked() earliest {
	var e earliest
	e.consider(b.maxAt, ReasonMaxLifetime)
	e.consider(b.expiresAt, ReasonSessionExpired)
	e.consider(b.idleAt(), ReasonIdleTimeout)
	return e
}

// scheduleNextLocked puts the channel's entry e on the wheel at its next
// deadline — as a fixed deadline unless it is the idle one, which traffic
// moves — or takes it off when there is none; b.mu is held.
func (b *binding) scheduleNextLocked(e wheelEntry) {
	switch next := b.nextLocked(); {
	case next.at.IsZero():
		b.owner.wheel.Remove(e)
	case next.why == ReasonIdleTimeout:
		b.owner.wheel.Schedule(e, next.at)
	default:
		b.owner.wheel.scheduleFixed(e, next.at)
	}
}

// dueLocked returns the cause of the first deadline that has passed at
// now, in the order max lifetime, session expiry, idle timeout, and when
// it was due; nil when none has. b.mu is held.
func (b *binding) dueLocked(now time.Time) (c *closeCause, at time.Time) {
	due := func(d time.Time) bool { return !d.IsZero() && !now.Before(d) }
	switch idle := b.idleAt(); {
	case due(b.maxAt):
		return &causeMaxLifetime, b.maxAt
	case due(b.expiresAt):
		return &causeSessionExpired, b.expiresAt
	case due(idle):
		return &causeIdleTimeout, idle
	}
	return nil, time.Time{}
}

// scheduleLocked puts the tunnel on the wheel at its next deadline; t.mu
// is held. A closing tunnel's entry is due at the end of its close grace
// instead (armLocked).
func (t *tunnel) scheduleLocked() {
	if t.closing || t.torn {
		return
	}
	t.scheduleNextLocked(t)
}

// Due implements [wheelEntry]. For an open tunnel, whichever deadline has
// passed begins the close ([tunnel.firstStep]: the client's Close frame
// written here when its connection is free at once); for a closing one,
// the end of the close grace closes both connections, in the rest.
func (t *tunnel) Due(now time.Time) func() {
	t.mu.Lock()
	switch {
	case t.torn:
		t.mu.Unlock()
		return nil
	case t.closing:
		// The clock, not now: a led now may lie ahead of it.
		if time.Now().Before(t.graceEnd) {
			// Re-armed after this tick had collected the entry.
			t.owner.wheel.Schedule(t, t.graceEnd)
			t.mu.Unlock()
			return nil
		}
		t.mu.Unlock()
		return func() { t.teardown(nil) }
	}
	c, at := t.dueLocked(now)
	if c == nil {
		t.scheduleLocked()
		t.mu.Unlock()
		return nil
	}
	t.decideCloseLocked(c)
	t.mu.Unlock()
	return t.firstStep(c, at)
}

// scheduleLocked puts the stream on the wheel at the earliest of max
// lifetime, session expiry and the idle deadline; s.mu is held.
func (s *stream) scheduleLocked() {
	if s.cause != nil || s.ended != "" {
		return
	}
	s.scheduleNextLocked(s)
}

// Due implements [wheelEntry]: the stream ends for the deadline that
// passed ([stream.endFirst]), or goes back on the wheel.
func (s *stream) Due(now time.Time) func() {
	s.mu.Lock()
	c, _ := s.dueLocked(now)
	if c == nil {
		s.scheduleLocked()
	}
	s.mu.Unlock()
	if c != nil {
		return s.endFirst(c, time.Time{})
	}
	return nil
}
