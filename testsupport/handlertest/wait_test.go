package handlertest_test

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/portcullis-proxy/portcullis/testsupport/handlertest"
)

// WaitFor returns once the condition holds.
func TestWaitFor(t *testing.T) {
	var n atomic.Int32
	go func() {
		for range 3 {
			time.Sleep(10 * time.Millisecond)
			n.Add(1)
		}
	}()
	handlertest.WaitFor(t, "three ticks", 10*time.Second, func() bool { return n.Load() == 3 })
}
