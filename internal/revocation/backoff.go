package revocation

import "time"

// Bounds of [backoff]: the first wait after a failed call at the broker,
// and the longest.
const (
	firstBackoff = 50 * time.Millisecond
	maxBackoff   = 2 * time.Second
)

// backoff is the wait between failed calls at the broker, publishing and
// reading alike: firstBackoff, doubling up to maxBackoff, and firstBackoff
// again after a call that succeeded. Its zero value waits firstBackoff
// first. It is one goroutine's.
type backoff struct{ last time.Duration }

// sleep waits the next wait, unless done is closed first; it reports
// whether the wait ran out (false: done, stop trying).
func (b *backoff) sleep(done <-chan struct{}) bool {
	if b.last == 0 {
		b.last = firstBackoff
	} else {
		b.last = min(2*b.last, maxBackoff)
	}
	t := time.NewTimer(b.last)
	defer t.Stop()
	select {
	case <-done:
		return false
	case <-t.C:
		return true
	}
}

// reset makes the next wait firstBackoff again.
func (b *backoff) reset() { b.last = 0 }
