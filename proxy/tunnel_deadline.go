package proxy

import (
	"net/http"
	"time"

	"github.com/portcullis-proxy/portcullis/pipeline"
)

// A tunnel has one timer, set to the earliest of its deadlines: max
// lifetime, session expiry and the idle deadline (last traffic plus
// idle_timeout). Re-validation is not the tunnel's: the tunnels of one
// session share one re-check ([rechecks]). The runtime keeps all timers in
// one heap, so thousands of tunnels reaching a deadline together cost one
// short callback each; traffic does not touch the timer (the callback finds
// the idle deadline moved and sets the timer again).

// scheduleLocked sets the timer to the next deadline; t.mu is held.
func (t *tunnel) scheduleLocked(now time.Time) {
	if t.closing || t.torn {
		return
	}
	var next time.Time
	consider := func(d time.Time) {
		if !d.IsZero() && (next.IsZero() || d.Before(next)) {
			next = d
		}
	}
	consider(t.maxAt)
	consider(t.expiresAt)
	if idle := t.policy.IdleTimeout; idle > 0 {
		consider(time.Unix(0, t.lastActive.Load()).Add(idle))
	}
	if next.IsZero() {
		return
	}
	d := next.Sub(now)
	if t.timer == nil {
		t.timer = time.AfterFunc(d, t.onTimer)
		return
	}
	t.timer.Reset(d)
}

// stopTimerLocked stops the deadline timer; t.mu is held.
func (t *tunnel) stopTimerLocked() {
	if t.timer != nil {
		t.timer.Stop()
	}
}

// onTimer handles whichever deadlines have passed.
func (t *tunnel) onTimer() {
	now := time.Now()
	due := func(d time.Time) bool { return !d.IsZero() && !now.Before(d) }
	t.mu.Lock()
	switch {
	case t.torn:
		t.mu.Unlock()
		return
	case t.closing:
		// The close grace: over, unless the timer was re-armed after
		// this call was already on its way.
		if now.Before(t.graceEnd) {
			t.timer.Reset(t.graceEnd.Sub(now))
			t.mu.Unlock()
			return
		}
		t.mu.Unlock()
		t.teardown(nil)
		return
	}
	var (
		c  *closeCause
		at time.Time // when c was due
	)
	idleAt := time.Unix(0, t.lastActive.Load()).Add(t.policy.IdleTimeout)
	switch {
	case due(t.maxAt):
		c, at = &causeMaxLifetime, t.maxAt
	case due(t.expiresAt):
		c, at = &causeSessionExpired, t.expiresAt
	case t.policy.IdleTimeout > 0 && !now.Before(idleAt):
		c, at = &causeIdleTimeout, idleAt
	}
	if c == nil {
		t.scheduleLocked(now)
	}
	t.mu.Unlock()
	if c != nil {
		t.beginClose(c, at)
	}
}

// applyRecheck applies the outcome of the re-check the tunnel's session
// group made at now: err nil with the session's current expiry (which
// replaces the tunnel's, in either direction, when bound to the session);
// a rejection (401, 403) ends the tunnel with "session revoked"; an
// identity provider that cannot answer (503, timeout, any other error)
// ends it too, unless the policy tolerates unavailability and the outage,
// counted from downSince, is shorter than the policy's unavailable grace.
func (t *tunnel) applyRecheck(now, expiresAt time.Time, err error, downSince time.Time) {
	var c *closeCause
	t.mu.Lock()
	status := pipeline.StatusOf(err)
	switch {
	case t.closing || t.torn:
	case err == nil:
		if !expiresAt.IsZero() {
			t.sessionExp = expiresAt
		}
		if t.policy.BindToSession && !expiresAt.IsZero() {
			t.expiresAt = expiresAt
			if !now.Before(expiresAt) {
				c = &causeSessionExpired
			}
		}
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		c = &causeSessionRevoked
	case !t.policy.TolerateUnavailable || now.Sub(downSince) >= t.policy.UnavailableGrace:
		c = &causeRevalidationUnavailable
	}
	if c == nil {
		t.scheduleLocked(now)
	}
	t.mu.Unlock()
	if c != nil {
		t.beginClose(c, time.Time{})
	}
}
