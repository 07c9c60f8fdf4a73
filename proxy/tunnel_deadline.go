package proxy

import (
	"context"
	"net/http"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/portcullis-proxy/portcullis/pipeline"
)

// A tunnel has one timer, set to the earliest of its deadlines: max
// lifetime, session expiry, the idle deadline (last traffic plus
// idle_timeout) and the next re-validation. The runtime keeps all timers in
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
	if !t.revalidating {
		consider(t.revalAt)
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
	revalidate := c == nil && !t.revalidating && due(t.revalAt)
	if revalidate {
		t.revalidating = true
	}
	if c == nil {
		t.scheduleLocked(now)
	}
	t.mu.Unlock()
	switch {
	case c != nil:
		t.beginClose(c, at)
	case revalidate:
		// The timer stays set for the other deadlines meanwhile.
		t.revalidate()
	}
}

// revalidate re-checks the credential that admitted the tunnel, bypassing
// any cache. A rejection (401, 403) ends the tunnel with "session revoked";
// an identity provider that cannot answer (503, timeout, any other error)
// ends it too unless the policy tolerates unavailability, in which case the
// tunnel lives on until the next re-validation or another deadline. A new
// expiry from the identity provider replaces the one the tunnel had, in
// either direction.
func (t *tunnel) revalidate() {
	ctx, cancel := context.WithTimeout(context.Background(), t.owner.opts.RevalidateTimeout)
	expiresAt, err := t.reval.Revalidate(ctx)
	cancel()
	now := time.Now()
	var c *closeCause
	t.mu.Lock()
	t.revalidating = false
	t.revalAt = now.Add(t.policy.RevalidateEvery)
	status := pipeline.StatusOf(err)
	switch {
	case t.closing || t.torn:
	case err == nil:
		if t.policy.BindToSession && !expiresAt.IsZero() {
			t.expiresAt = expiresAt
			if !now.Before(expiresAt) {
				c = &causeSessionExpired
			}
		}
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		c = &causeSessionRevoked
	case !t.policy.TolerateUnavailable:
		c = &causeRevalidationUnavailable
	}
	if c == nil {
		t.scheduleLocked(now)
	}
	t.mu.Unlock()
	if err != nil {
		entry := t.owner.log.WithFields(logrus.Fields{
			"rule": t.rule, "subject": t.subject, "status": status, "error": err.Error(),
		})
		if c == nil {
			entry.Warn("websocket session could not be revalidated; tunnel kept open as the rule tolerates it")
		} else {
			entry.Info("websocket session revalidation failed")
		}
	}
	if c != nil {
		t.beginClose(c, time.Time{})
	}
}
