package tunnel

import (
	"container/heap"
	"slices"
	"time"
)

// Leading a burst of fixed deadlines.
//
// Max lifetime and session expiry are fixed deadlines: known when a channel
// opens (or when a re-check learns a new expiry), and not moved by
// traffic. When thousands of channels share one — every tab of a session,
// channels opened together under one max_lifetime — their client Close
// frames go out in one batch ([deadlineWheel.batch]), back to back, and the
// last of them waits for the writes of all before it (on loopback each
// write costs the writer 12-16 µs: the sender runs the receiver's TCP
// input). Collected at the deadline, such a burst ends after it by the
// whole batch's time.
//
// So the wheel looks ahead: it counts the fixed deadlines of its entries in
// slots of [leadSlot], and collects a slot that holds at least [leadMin]
// of them early, by the time its client steps are estimated to take — the
// cost of one client step observed in earlier batches (a moving average;
// [defaultStepCost] before the first), times the slot's count, divided by
// the goroutines the batch will use — so that its last Close lands at the
// deadline instead of after it. Within the batch the entries go in the
// order of their deadlines, earliest first.
//
// The contract:
//
//   - No Close is written more than the lead bound (Options.CloseLead,
//     default [DefaultCloseLead]) before its deadline: the slot is
//     collected no earlier than its latest deadline less the bound.
//   - A fixed deadline shared by fewer than leadMin entries of a slot is
//     kept exactly as without a lead: its Close is never early.
//   - Idle deadlines (moved by traffic), revocations, re-checks, rules
//     reloads, shutdown and the close grace are never led.
//   - Closing early is the safe side for both fixed deadlines: a session
//     past its expiry or a tunnel past its lifetime must not be served,
//     and a Close up to the bound early is well inside the precision a
//     session expiry (seconds) or a max lifetime (minutes to hours) has.
//
// [DeadlineMetrics.DeadlineClose] reports a led Close with a negative
// lateness.

// DefaultCloseLead is the lead bound when Options.CloseLead is zero.
const DefaultCloseLead = 100 * time.Millisecond

const (
	// leadSlot is the width of the slots fixed deadlines are counted in:
	// deadlines this close together fall due as one burst.
	leadSlot = 10 * time.Millisecond
	// leadMin is the least number of fixed deadlines in one slot that is
	// led: fewer close at their deadline, never before.
	leadMin = 256
	// defaultStepCost is the estimated wall time of one client step on
	// one of the batch's goroutines before any batch was measured: a
	// little over what 5,000 Close frames took on a quiet two-core machine
	// shared with their clients (96 ms on two goroutines, 38 µs each; the
	// write itself is 12-16 µs of it), so that a first burst rather ends
	// early than late. 5,000 at one deadline then start the lead bound
	// (100 ms) early.
	defaultStepCost = 40 * time.Microsecond
	// estimateMin is the least number of Close frames a batch's first
	// steps must have written for its time to count in the estimate:
	// smaller batches are mostly the cost of starting one.
	estimateMin = 64
)

// leadSlotOf is the slot a deadline at at is counted in.
func leadSlotOf(at time.Time) int64 { return at.UnixNano() / int64(leadSlot) }

// slotCount is the fixed deadlines of one slot on the wheel: how many,
// and the earliest and latest seen since the slot was opened. first and
// last are not narrowed when an entry leaves; a wider range only makes
// the lead start closer to the bound's limit (first) or later (last), so
// the bound holds either way.
type slotCount struct {
	n           int
	first, last time.Time
}

// leadEstimate is the wheel's estimate of one client step's wall time on
// one of a batch's goroutines; it is guarded by the wheel's mu.
type leadEstimate struct {
	bound    time.Duration // the lead bound; 0: no lead
	cost     time.Duration // estimated wall time of one client step per goroutine
	measured bool          // cost comes from a batch, not the default
}

// observe folds a batch into the estimate: its first steps took elapsed
// on workers goroutines and wrote wrote Close frames. The first measured
// batch replaces the default; later ones move the average by a quarter of
// their difference.
func (l *leadEstimate) observe(elapsed time.Duration, workers int, wrote int64) {
	if wrote < estimateMin {
		return
	}
	sample := elapsed * time.Duration(workers) / time.Duration(wrote)
	if !l.measured {
		l.cost, l.measured = sample, true
		return
	}
	l.cost += (sample - l.cost) / 4
}

// lead is how early a burst of n fixed deadlines starts: the estimated
// time of its client steps, at most the bound; zero under leadMin.
func (l *leadEstimate) lead(n, maxWorkers int) time.Duration {
	if l.bound <= 0 || n < leadMin {
		return 0
	}
	d := l.cost * time.Duration(n) / time.Duration(batchWorkers(maxWorkers, n))
	return min(d, l.bound)
}

// collectAt is when the wheel collects the slot s: its earliest deadline
// less the lead, but never earlier than its latest less the bound; the
// zero time when s is not led.
func (l *leadEstimate) collectAt(s *slotCount, maxWorkers int) time.Time {
	d := l.lead(s.n, maxWorkers)
	if d <= 0 {
		return time.Time{}
	}
	at := s.first.Add(-d)
	if lo := s.last.Add(-l.bound); at.Before(lo) {
		at = lo
	}
	return at
}

// countLocked adds (delta 1) or takes (-1) a fixed deadline at at to the
// slot counts; w.mu is held.
func (w *deadlineWheel) countLocked(at time.Time, delta int) {
	k := leadSlotOf(at)
	s := w.slots[k]
	if s == nil {
		if delta < 0 {
			return
		}
		s = &slotCount{first: at, last: at}
		w.slots[k] = s
	}
	s.n += delta
	switch {
	case s.n <= 0:
		delete(w.slots, k)
		delete(w.big, k)
		return
	case delta > 0 && at.Before(s.first):
		s.first = at
	case delta > 0 && at.After(s.last):
		s.last = at
	}
	if s.n >= leadMin {
		w.big[k] = s
	} else {
		delete(w.big, k)
	}
}

// nextLeadLocked is the earliest instant a led slot is to be collected;
// zero when none is led. w.mu is held.
func (w *deadlineWheel) nextLeadLocked() time.Time {
	var next time.Time
	for _, s := range w.big {
		if at := w.est.collectAt(s, w.workers); !at.IsZero() && (next.IsZero() || at.Before(next)) {
			next = at
		}
	}
	return next
}

// collectLedLocked takes off the wheel every entry of a slot whose lead
// has begun at now, and returns them in the order of their deadlines.
// w.mu is held.
func (w *deadlineWheel) collectLedLocked(now time.Time) []*wheelItem {
	var keys map[int64]bool
	for k, s := range w.big {
		if at := w.est.collectAt(s, w.workers); !at.IsZero() && !at.After(now) {
			if keys == nil {
				keys = map[int64]bool{}
			}
			keys[k] = true
		}
	}
	if keys == nil {
		return nil
	}
	var led []*wheelItem
	kept := w.items[:0]
	for _, it := range w.items {
		if it.fixed && keys[leadSlotOf(it.at)] {
			led = append(led, it)
			delete(w.byEntry, it.e)
			continue
		}
		kept = append(kept, it)
	}
	clear(w.items[len(kept):])
	w.items = kept
	for i, it := range w.items {
		it.index = int32(i)
	}
	heap.Init(&w.items)
	for k := range keys {
		delete(w.slots, k)
		delete(w.big, k)
	}
	slices.SortFunc(led, func(a, b *wheelItem) int { return a.at.Compare(b.at) })
	return led
}
