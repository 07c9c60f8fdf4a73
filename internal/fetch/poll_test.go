package fetch

import (
	"context"
	"crypto/sha256"
	"testing"
	"time"
)

// Every ticks at the interval, with later and later times, until ctx ends,
// and returns then; a non-positive interval polls at the default.
func TestEveryTicksUntilTheContextEnds(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var times []time.Time
	Every(ctx, time.Millisecond, func(now time.Time) {
		times = append(times, now)
		if len(times) == 3 {
			cancel()
		}
	})
	if len(times) != 3 {
		t.Fatalf("ticked %d times after ctx ended at the third, want 3", len(times))
	}
	for i := 1; i < len(times); i++ {
		if !times[i].After(times[i-1]) {
			t.Errorf("tick %d at %v, not after tick %d at %v", i, times[i], i-1, times[i-1])
		}
	}

	ctx, cancel = context.WithTimeout(context.Background(), 3*DefaultPollInterval)
	defer cancel()
	start := time.Now()
	var ticked time.Duration
	Every(ctx, 0, func(now time.Time) {
		ticked = now.Sub(start)
		cancel()
	})
	if ticked < DefaultPollInterval/2 || ticked > 2*DefaultPollInterval {
		t.Errorf("interval 0 ticked after %v, want about %v", ticked, DefaultPollInterval)
	}
}

// A changed content is due when two polls in a row read it, once; the one
// applied, and one that failed after it was due, are not due again until
// the content changes.
func TestSettleAppliesAContentReadTwice(t *testing.T) {
	a, b, c := sha256.Sum256([]byte("a")), sha256.Sum256([]byte("b")), sha256.Sum256([]byte("c"))
	var s Settle
	s.Applied(a)
	for i, step := range []struct {
		sum  [32]byte
		name string
		due  bool
	}{
		{a, "a, applied", false},
		{b, "b, read once", false},
		{b, "b, read twice", true},
		{b, "b, applied", false},
		{c, "c, half-written", false},
		{a, "a, not c", false},
		{a, "a, read twice", true},
		{a, "a, applied again", false},
	} {
		if got := s.Due(step.sum); got != step.due {
			t.Errorf("poll %d (%s): Due = %v, want %v", i, step.name, got, step.due)
		}
	}
	// A Settle is a value: a copy taken before is a state to go back to.
	saved := s
	s.Applied(c)
	s = saved
	if s.Due(a) {
		t.Error("a restored Settle lost the content it had applied")
	}
}
