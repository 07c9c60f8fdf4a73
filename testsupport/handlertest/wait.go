package handlertest

import (
	"testing"
	"time"
)

// WaitFor polls cond every 5 ms until it holds, failing tb with "timed out
// waiting for what" once within has passed. It is for what a test cannot be
// told of directly: a reload, a count that goroutines move.
func WaitFor(tb testing.TB, what string, within time.Duration, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
