package tunnel

import (
	"io"
	"syscall"
	"time"
)

// A tunnel's deadlines — max lifetime, session expiry and the idle
// deadline (last traffic plus idle_timeout) — are one entry on the
// process's [DeadlineWheel], due at the earliest of them. Re-validation is
// not the tunnel's: the tunnels of one session share one re-check
// ([rechecks]). Traffic does not touch the wheel: when the entry falls due,
// Due finds the idle deadline moved and schedules the entry again. Once a
// close has begun, the tunnel's own timer bounds the closing handshake
// (the close grace).

// scheduleLocked puts the tunnel on the wheel at its next deadline; t.mu
// is held.
func (t *tunnel) scheduleLocked(time.Time) {
	if t.closing || t.torn {
		return
	}
	if next := t.nextDeadlineLocked(); !next.IsZero() {
		t.owner.wheel.Schedule(t, next)
		return
	}
	t.owner.wheel.Remove(t)
}

// stopTimerLocked takes the tunnel off the wheel and stops the close
// grace timer; t.mu is held.
func (t *tunnel) stopTimerLocked() {
	t.owner.wheel.Remove(t)
	if t.timer != nil {
		t.timer.Stop()
	}
}

// onTimer ends the close grace: both connections are closed.
func (t *tunnel) onTimer() {
	now := time.Now()
	t.mu.Lock()
	if t.torn || !t.closing {
		t.mu.Unlock()
		return
	}
	// Over, unless the timer was re-armed after this call was already on
	// its way.
	if now.Before(t.graceEnd) {
		t.timer.Reset(t.graceEnd.Sub(now))
		t.mu.Unlock()
		return
	}
	t.mu.Unlock()
	t.teardown(nil)
}

// Due implements [WheelEntry]: whichever deadline has passed begins the
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
		t.scheduleLocked(now)
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

// applyRecheck implements recheckMember: the outcome of the re-check the
// tunnel's session group made at now ([binding.recheckLocked]) ends the
// tunnel or moves its deadlines.
func (t *tunnel) applyRecheck(now, expiresAt time.Time, err error, downSince time.Time) {
	var c *closeCause
	t.mu.Lock()
	if !t.closing && !t.torn {
		c = t.recheckLocked(now, expiresAt, err, downSince)
	}
	if c == nil {
		t.scheduleLocked(now)
	}
	t.mu.Unlock()
	if c != nil {
		t.beginClose(c, time.Time{})
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
