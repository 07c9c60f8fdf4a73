package tunnel

import "time"

// deadlineTimer is what a stream needs of a deadline scheduler: one timer,
// re-armed to the stream's earliest deadline, stopped when it ends.
// *time.Timer implements it; a shared deadline wheel can replace it here,
// in newDeadlineTimer, without touching the stream.
type deadlineTimer interface {
	Reset(d time.Duration) bool
	Stop() bool
}

// newDeadlineTimer calls f once d has passed (and again after each Reset).
func newDeadlineTimer(d time.Duration, f func()) deadlineTimer { return time.AfterFunc(d, f) }
