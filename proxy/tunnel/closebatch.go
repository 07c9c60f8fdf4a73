package tunnel

import (
	"io"
	"sync"
	"syscall"
	"time"
)

// Closing many channels at once. Whenever the proxy ends channels on its
// own initiative — deadlines collected at one tick of the wheel, a
// revocation matching many channels ([Registry.Revoke]), a re-check that
// rejects a session, shutdown — the ends go through one batch
// ([deadlineWheel.batch]): first every channel's client step, back to back
// (a tunnel's Close frame, one write that never waits; a stream's end
// decided and its copy woken to deliver the final event or abort), then
// the rest of each close (the upstream's Close, the replies, the teardown,
// the log line and the metrics). The last client of a burst thus waits for
// the client steps before it, not for the others' teardown.

// ender is a channel a batch can end: a [tunnel] or a [stream].
type ender interface {
	// endFirst begins ending the channel for c (due: the instant the
	// deadline that ends it fell due, zero for other causes) and takes
	// its client step; it must not block. It returns the rest of the
	// close, nil when there is none (or the channel was ending already).
	endFirst(c *closeCause, due time.Time) (rest func())
	// bound is what the channel is bound to: its owner holds the wheel
	// whose batches it goes through.
	bound() *binding
}

// ending is one channel a batch ends, and why.
type ending struct {
	ch  ender
	c   *closeCause
	due time.Time
}

// closeStep names the steps of a close, as a wheel's observe hook sees
// them.
type closeStep int

const (
	stepClientClose   closeStep = iota // a tunnel's client had its Close frame
	stepUpstreamClose                  // a tunnel's upstream Close is about to be written
)

// note tells the observe hook, when set, of step s.
func (w *deadlineWheel) note(s closeStep) {
	if w.observe != nil {
		w.observe(s)
	}
}

// batchShare is the least number of first steps worth a goroutine of
// their own: smaller batches run on the caller alone.
const batchShare = 256

// batchWorkers is how many goroutines share a batch of n first steps on
// a wheel of maxWorkers.
func batchWorkers(maxWorkers, n int) int { return max(1, min(maxWorkers, n/batchShare)) }

// batch runs first(i) for every i in [0, n) back to back — a large batch
// split between up to workers goroutines (one per processor), so that
// the client steps use every core — while holding w.first, so that
// replies to the Close frames already out wait for the rest
// ([deadlineWheel.AwaitFirstSteps]); it then starts every rest the first
// steps returned, each on a goroutine of its own (a rest may wait: a frame
// in flight to the upstream, the close grace). batch returns once the
// first steps are done. The time the first steps took, per Close frame
// they wrote, goes into the wheel's estimate of how early a burst of fixed
// deadlines has to start (lead.go).
func (w *deadlineWheel) batch(n int, first func(i int) (rest func())) {
	if n == 0 {
		return
	}
	workers := batchWorkers(w.workers, n)
	rests := make([][]func(), workers)
	run := func(k int) {
		lo, hi := k*n/workers, (k+1)*n/workers
		rs := make([]func(), 0, hi-lo)
		for i := lo; i < hi; i++ {
			if r := first(i); r != nil {
				rs = append(rs, r)
			}
		}
		rests[k] = rs
	}
	w.first.Lock()
	start, wrote0 := time.Now(), w.wrote.Load()
	var wg sync.WaitGroup
	for k := 1; k < workers; k++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			run(k)
		}()
	}
	run(0)
	wg.Wait()
	elapsed, wrote := time.Since(start), w.wrote.Load()-wrote0
	w.first.Unlock()
	if wrote >= estimateMin {
		// (Smaller batches do not count: see leadEstimate.observe.)
		w.mu.Lock()
		w.est.observe(elapsed, workers, wrote)
		if !w.stopped {
			w.armLocked()
		}
		w.mu.Unlock()
	}
	for _, rs := range rests {
		for _, r := range rs {
			go r()
		}
	}
}

// AwaitFirstSteps returns once no batch is running its first steps. A
// peer's answer to a Close the proxy just wrote calls it before doing its
// own work, so that the replies of the first clients do not compete for
// the processors with the Close frames still to be written (on a busy
// machine each goroutine woken by a reply takes a turn before the batch's
// goroutine gets its next). It never waits for more than one batch's first
// steps, which do not block.
func (w *deadlineWheel) AwaitFirstSteps() {
	w.first.RLock()
	w.first.RUnlock()
}

// endAll ends the channels of es in one batch of their owners' wheel
// ([deadlineWheel.batch]); es's channels belong to t.
func (t *Server) endAll(es []ending) {
	t.wheel.batch(len(es), func(i int) func() { return es[i].ch.endFirst(es[i].c, es[i].due) })
}

// endFirst implements [ender].
func (t *tunnel) endFirst(c *closeCause, due time.Time) func() {
	t.mu.Lock()
	if t.closing || t.torn {
		t.mu.Unlock()
		return nil
	}
	t.decideCloseLocked(c)
	t.mu.Unlock()
	return t.firstStep(c, due)
}

// firstStep is a tunnel's client step, once its close is decided for c:
// splices stop, and the client's Close frame is written now when the
// connection is free at once (no frame in flight, room in its socket
// buffer). The rest returned writes it otherwise, then goes on with the
// upstream's Close, the replies and the teardown (closeRest), and records
// how late a deadline close was (due not zero).
func (t *tunnel) firstStep(c *closeCause, due time.Time) func() {
	// A frame being spliced would hold a peer's write lock until it ends
	// (and the peer go on receiving it): splices stop now, mid-frame (see
	// pump.splice). The download direction stops before the client's
	// Close is due (which then cannot be sent inside that frame); the
	// upload direction after it (closeRest), so the client hears why
	// first.
	t.closeDecided.Store(true)
	t.down.interruptSplice()
	sent := t.tryCloseClient(c)
	var late time.Duration
	if sent {
		// Negative when a burst of fixed deadlines was led (lead.go).
		if !due.IsZero() {
			late = time.Since(due)
		}
		t.owner.wheel.wrote.Add(1)
		t.owner.wheel.note(stepClientClose)
	}
	return func() {
		if !sent {
			t.sendClose(&t.client, c)
			if !due.IsZero() {
				late = time.Since(due)
			}
			t.owner.wheel.note(stepClientClose)
		}
		if !due.IsZero() {
			t.owner.dm.DeadlineClose(t.rule, c.reason, late)
		}
		t.closeRest(c)
	}
}

// endFirst implements [ender]: the stream's end is decided and its copy
// unblocked (stream.end), which then delivers the final event or the abort
// on the copy's own goroutine — the proxy cannot write to a response
// another goroutine is writing. The rest (unregistering, the log line and
// the metrics) runs when the copy closes the body.
func (s *stream) endFirst(c *closeCause, _ time.Time) func() {
	s.end(c)
	return nil
}

// wheelWriteLimit bounds the first step's write of one client Close frame
// on a connection that is not plain TCP: a client whose socket buffer is
// full gets its Close from the rest of the close instead, so that it
// cannot hold up the others due with it.
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
	n, err := writeNow(e, c.clientFrame())
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
