package tunnel

import (
	"container/heap"
	"io"
	"sync"
	"syscall"
	"time"
)

// Deadlines. A live channel's deadlines — max lifetime, session expiry
// (bind_to_session) and the idle deadline (last traffic plus
// idle_timeout) — are one entry on the server's [deadlineWheel], due at
// the earliest of them. Re-validation is not the channel's: the tunnels and
// streams of one session share one re-check ([rechecks]). Traffic does not
// touch the wheel: when the entry falls due, Due finds the idle deadline
// moved and schedules the entry again. Once a tunnel's close has begun,
// its own timer bounds the closing handshake (the close grace).

// wheelEntry is something a [deadlineWheel] ends when its due time comes:
// a [tunnel] or a session-bound [stream].
type wheelEntry interface {
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

// deadlineWheel keeps the due times of many entries behind one runtime
// timer. At each tick it collects every entry that is due, calls their Due
// back to back on one goroutine, and only then starts the rest of each
// close, so that entries falling due together (one session's tabs, a
// fleet-wide revoke, a common expiry) get their first step out at the cost
// of those steps alone rather than behind each other's teardown.
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

	// first is held (for writing) while a tick runs its entries' Due:
	// AwaitFirstSteps waits on it.
	first sync.RWMutex
}

// newDeadlineWheel returns an empty wheel. Its timer runs only while it
// holds entries.
func newDeadlineWheel() *deadlineWheel {
	w := &deadlineWheel{byEntry: map[wheelEntry]*wheelItem{}}
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

// tick collects the due entries, runs their Due back to back, then their
// rests.
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
func (w *deadlineWheel) AwaitFirstSteps() {
	w.first.RLock()
	w.first.RUnlock()
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
// is held.
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

// Due implements [wheelEntry]: whichever deadline has passed begins the
// close, the client's Close frame written here when its connection is
// free at once (no frame in flight, room in its socket buffer), and the
// rest — the upstream's Close, the replies, the teardown — returned to run
// after every tunnel due at this tick had its client's Close.
func (t *tunnel) Due(now time.Time) func() {
	t.mu.Lock()
	if t.torn || t.closing {
		t.mu.Unlock()
		return nil
	}
	c, at := t.dueLocked(now)
	if c == nil {
		t.scheduleLocked()
		t.mu.Unlock()
		return nil
	}
	t.decideCloseLocked(c)
	t.mu.Unlock()

	t.closeDecided.Store(true)
	t.down.interruptSplice()
	sent := t.tryCloseClient(c)
	if sent {
		t.owner.dm.DeadlineClose(t.rule, c.reason, time.Since(at))
	}
	return func() {
		if !sent {
			t.sendClose(&t.client, c)
			t.owner.dm.DeadlineClose(t.rule, c.reason, time.Since(at))
		}
		t.closeRest(c)
	}
}

// wheelWriteLimit bounds the wheel's write of one client Close frame: a
// client whose socket buffer is full gets its Close from the rest of the
// close instead, so that it cannot hold up the others due with it.
const wheelWriteLimit = 10 * time.Millisecond

// tryCloseClient writes the client's Close frame if nothing is being
// written to the client and the frame fits within wheelWriteLimit; it
// reports whether the client has its Close (or never will: a frame cut
// short ends the tunnel).
func (t *tunnel) tryCloseClient(c *closeCause) bool {
	e := &t.client
	if !e.mu.TryLock() {
		return false
	}
	defer e.mu.Unlock()
	if e.closeSent.Load() {
		return true
	}
	var buf [closeFrameMax]byte
	frame := closeFrame(buf[:0], c, false)
	n, err := writeNow(e, frame)
	switch {
	case err == nil:
		e.closeSent.Store(true)
		return true
	case n > 0:
		// Part of a frame went out: nothing more can be written to this
		// connection.
		e.closeSent.Store(true)
		go t.teardown(c)
		return true
	default:
		return false
	}
}

// writeNow writes b to e's connection without waiting: on a plain TCP
// connection one write system call that takes what the socket buffer has
// room for (none: an error, nothing written); on any other (TLS) a write
// bounded by wheelWriteLimit.
func writeNow(e *endpoint, b []byte) (int, error) {
	if tc := e.tcp.Load(); tc != nil {
		if rc, err := tc.SyscallConn(); err == nil {
			n, werr := 0, error(nil)
			err = rc.Write(func(fd uintptr) bool {
				n, werr = syscall.Write(int(fd), b)
				if n < 0 {
					n = 0
				}
				return true // never wait for room
			})
			if err == nil {
				err = werr
			}
			if err == nil && n < len(b) {
				err = io.ErrShortWrite
			}
			return n, err
		}
	}
	_ = e.conn.SetWriteDeadline(time.Now().Add(wheelWriteLimit))
	n, err := e.conn.Write(b)
	_ = e.conn.SetWriteDeadline(time.Time{})
	return n, err
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
// passed (which does not block: the copy to the client is unblocked and
// ends on its own goroutine), or goes back on the wheel.
func (s *stream) Due(now time.Time) func() {
	s.mu.Lock()
	c, _ := s.dueLocked(now)
	if c == nil {
		s.scheduleLocked()
	}
	s.mu.Unlock()
	if c != nil {
		s.end(c)
	}
	return nil
}
