package tunnel

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

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

// Entries due at one instant all get their Due before any rest runs.
func TestWheelDueBeforeRest(t *testing.T) {
	w := NewDeadlineWheel()
	defer w.Stop()
	log := newEventLog()
	at := time.Now().Add(30 * time.Millisecond)
	const n = 500
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
	if w.Len() != 0 {
		t.Fatalf("%d entries left on the wheel", w.Len())
	}
}

// Entries fall due in the order of their times; a rescheduled entry at
// its new time; a removed one never.
func TestWheelScheduleRescheduleRemove(t *testing.T) {
	w := NewDeadlineWheel()
	defer w.Stop()
	log := newEventLog()
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
	w := NewDeadlineWheel()
	defer w.Stop()
	log := newEventLog()
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
	w := NewDeadlineWheel()
	log := newEventLog()
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
	w := NewDeadlineWheel()
	defer w.Stop()
	log := newEventLog()
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
