package revocation

import (
	"testing"
	"time"
)

// The waits between failed calls double from 50ms up to 2s, and start
// again at 50ms after a success; a closed done ends a wait at once.
func TestBackoffDoublesToItsBoundAndResets(t *testing.T) {
	var b backoff
	start := time.Now()
	if !b.sleep(make(chan struct{})) {
		t.Fatal("a wait with done open did not run out")
	}
	if waited := time.Since(start); waited < firstBackoff {
		t.Errorf("the first wait took %v, want at least %v", waited, firstBackoff)
	}
	done := make(chan struct{})
	close(done)
	want := []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond,
		1600 * time.Millisecond, 2 * time.Second, 2 * time.Second}
	for i, w := range want {
		if b.sleep(done) {
			t.Errorf("wait %d ran out with done closed", i+2)
		}
		if b.last != w {
			t.Errorf("wait %d = %v, want %v", i+2, b.last, w)
		}
	}
	b.reset()
	b.sleep(done)
	if b.last != firstBackoff {
		t.Errorf("the wait after a reset = %v, want %v", b.last, firstBackoff)
	}
}
