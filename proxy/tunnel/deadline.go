package tunnel

import (
	"container/heap"
	"runtime"
	"sync"
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
// runtime timer of its own.

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
}

// newDeadlineWheel returns an empty wheel. Its timer runs only while it
// holds entries.
func newDeadlineWheel() *deadlineWheel {
	w := &deadlineWheel{byEntry: map[wheelEntry]*wheelItem{}, workers: runtime.GOMAXPROCS(0)}
	w.timer = time.AfterFunc(time.Hour, w.tick)
	w.timer.Stop()
	return w
}

// Schedule adds e due at at, or moves it there if it is on the wheel.
func (w *deadlineWheel) Schedule(e wheelEntry, at time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.stopped {
		return
	}
	if it, ok := w.byEntry[e]; ok {
		it.at = at
		heap.Fix(&w.items, it.index)
	} else {
		it := &wheelItem{e: e, at: at}
		w.byEntry[e] = it
		heap.Push(&w.items, it)
	}
	w.armLocked()
}

// Remove takes e off the wheel; it is not an error when it is not on it.
func (w *deadlineWheel) Remove(e wheelEntry) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if it, ok := w.byEntry[e]; ok {
		heap.Remove(&w.items, it.index)
		delete(w.byEntry, e)
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
	w.timer.Stop()
	w.armedAt = time.Time{}
}

// armLocked sets the timer to the earliest entry; w.mu is held.
func (w *deadlineWheel) armLocked() {
	if len(w.items) == 0 {
		if !w.armedAt.IsZero() {
			w.timer.Stop()
			w.armedAt = time.Time{}
		}
		return
	}
	next := w.items[0].at
	if next.Equal(w.armedAt) {
		return
	}
	w.armedAt = next
	w.timer.Reset(time.Until(next))
}

// tick collects the due entries and runs them as one batch.
func (w *deadlineWheel) tick() {
	now := time.Now()
	w.mu.Lock()
	w.armedAt = time.Time{}
	var due []wheelEntry
	for len(w.items) > 0 && !w.items[0].at.After(now) {
		it := heap.Pop(&w.items).(*wheelItem)
		delete(w.byEntry, it.e)
		due = append(due, it.e)
	}
	w.armLocked()
	w.mu.Unlock()
	w.batch(len(due), func(i int) func() { return due[i].Due(now) })
}

type wheelItem struct {
	e     wheelEntry
	at    time.Time
	index int
}

// wheelHeap is a min-heap of items by due time.
type wheelHeap []*wheelItem

func (h wheelHeap) Len() int           { return len(h) }
func (h wheelHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h wheelHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *wheelHeap) Push(x any) {
	it := x.(*wheelItem)
	it.index = len(*h)
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
	if idle := b.policy.IdleTimeout; idle > 0 {
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

// nextDeadlineLocked returns the earliest of max lifetime, session expiry
// (when bound) and the idle deadline; zero when none is set. b.mu is held.
func (b *binding) nextDeadlineLocked() time.Time {
	var e earliest
	e.consider(b.maxAt, ReasonMaxLifetime)
	e.consider(b.expiresAt, ReasonSessionExpired)
	e.consider(b.idleAt(), ReasonIdleTimeout)
	return e.at
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
	if next := t.nextDeadlineLocked(); !next.IsZero() {
		t.owner.wheel.Schedule(t, next)
		return
	}
	t.owner.wheel.Remove(t)
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
		if now.Before(t.graceEnd) {
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
	if next := s.nextDeadlineLocked(); !next.IsZero() {
		s.owner.wheel.Schedule(s, next)
	}
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
