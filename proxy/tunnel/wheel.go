package tunnel

import (
	"container/heap"
	"sync"
	"time"
)

// WheelEntry is something a [DeadlineWheel] ends when its due time comes:
// a tunnel now, a session-bound stream later.
type WheelEntry interface {
	// Due is called on the wheel's goroutine at (or just after) the
	// entry's due time, now being the instant the wheel collected it.
	// It does the first, urgent step of the close — for a tunnel, writing
	// the client's Close frame — and must not block: a write it does is
	// small and bounded by a short write deadline. It returns the rest of
	// the close, which the wheel runs off its goroutine once every entry
	// collected at the same tick had its Due; nil when there is nothing
	// more (the entry found nothing due and may have rescheduled itself).
	Due(now time.Time) (rest func())
}

// DeadlineWheel keeps the due times of many entries behind one runtime
// timer. At each tick it collects every entry that is due, calls their Due
// back to back on one goroutine, and only then starts the rest of each
// close, so that entries falling due together (one session's tabs, a
// fleet-wide revoke, a common expiry) get their first step out at the cost
// of those steps alone rather than behind each other's teardown.
//
// Schedule, Remove and Due may be called from any goroutine; Due may call
// Schedule or Remove for its own entry (the wheel holds no lock while it
// runs).
type DeadlineWheel struct {
	mu      sync.Mutex
	items   wheelHeap
	byEntry map[WheelEntry]*wheelItem
	timer   *time.Timer
	armedAt time.Time // the instant the timer is set for; zero: stopped
	stopped bool

	// first is held (for writing) while a tick runs its entries' Due:
	// AwaitFirstSteps waits on it.
	first sync.RWMutex
}

// NewDeadlineWheel returns an empty wheel. Its timer runs only while it
// holds entries.
func NewDeadlineWheel() *DeadlineWheel {
	w := &DeadlineWheel{byEntry: map[WheelEntry]*wheelItem{}}
	w.timer = time.AfterFunc(time.Hour, w.tick)
	w.timer.Stop()
	return w
}

// Schedule adds e due at at, or moves it there if it is on the wheel.
func (w *DeadlineWheel) Schedule(e WheelEntry, at time.Time) {
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
func (w *DeadlineWheel) Remove(e WheelEntry) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if it, ok := w.byEntry[e]; ok {
		heap.Remove(&w.items, it.index)
		delete(w.byEntry, e)
		w.armLocked()
	}
}

// Len reports how many entries are on the wheel.
func (w *DeadlineWheel) Len() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.items)
}

// Stop drops every entry and stops the timer; later Schedules do nothing.
func (w *DeadlineWheel) Stop() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.stopped = true
	w.items = nil
	clear(w.byEntry)
	w.timer.Stop()
	w.armedAt = time.Time{}
}

// armLocked sets the timer to the earliest entry; w.mu is held.
func (w *DeadlineWheel) armLocked() {
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

// tick collects the due entries, runs their Due back to back, then their
// rests.
func (w *DeadlineWheel) tick() {
	now := time.Now()
	w.mu.Lock()
	w.armedAt = time.Time{}
	var due []WheelEntry
	for len(w.items) > 0 && !w.items[0].at.After(now) {
		it := heap.Pop(&w.items).(*wheelItem)
		delete(w.byEntry, it.e)
		due = append(due, it.e)
	}
	w.armLocked()
	w.mu.Unlock()
	if len(due) == 0 {
		return
	}
	rests := make([]func(), 0, len(due))
	w.first.Lock()
	for _, e := range due {
		if r := e.Due(now); r != nil {
			rests = append(rests, r)
		}
	}
	w.first.Unlock()
	// The rest of each close may wait (a frame in flight to the upstream,
	// the close grace): each runs on its own.
	for _, r := range rests {
		go r()
	}
}

// AwaitFirstSteps returns once no tick is running its entries' Due. A
// peer's answer to a Close the wheel just wrote calls it before doing its
// own work, so that the replies of the first clients do not compete for
// the processors with the Close frames still to be written (on a busy
// machine each goroutine woken by a reply takes a turn before the wheel's
// goroutine gets its next). It never waits for more than one tick's Due
// calls, which do not block.
func (w *DeadlineWheel) AwaitFirstSteps() {
	w.first.RLock()
	w.first.RUnlock()
}

type wheelItem struct {
	e     WheelEntry
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
