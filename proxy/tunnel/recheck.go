package tunnel

import (
	"context"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/portcullis-proxy/portcullis/pipeline"
)

// Coalesced re-validation. Tunnels that share a session share one re-check:
// one identity-provider call per session per interval per process, whatever
// the number of tunnels (1,000 tunnels over 10 sessions are 10 calls per
// interval, not 1,000). A group is keyed by the admitting authenticator and
// the session id; a session without an id is grouped by the hash of its
// credential, and one with neither re-checks alone. The group's interval is
// the shortest revalidate_every of its members, shortened by a random
// jitter of up to a tenth, so that sessions opened together do not re-check
// together and no tunnel is re-checked later than its rule says.
//
// The outcome applies to every member at once ([binding.recheckLocked]):
// the members it ends close in one batch ([Server.endAll]), every client
// step first. A rejection is also reported to [Revocations.Rejected] once,
// so that the other replicas close their tunnels of the session too. A
// group is an entry of the server's deadline wheel, due at its next
// re-check; the identity provider is asked in the entry's rest, off the
// wheel's goroutine.

// recheckMember is a live channel that takes part in coalesced re-checks:
// a WebSocket [tunnel] or a session-bound [stream]. Tunnels and streams of
// one session share one group.
type recheckMember interface {
	// bound is what the member is bound to; its group field is guarded
	// by rechecks.mu. endFirst ends it, in a batch.
	ender
	// applyRecheck applies the group's outcome (see
	// [binding.recheckLocked]) and returns the cause to end the member
	// for, nil when it stays open (its deadlines moved).
	applyRecheck(now, expiresAt time.Time, err error, downSince time.Time) *closeCause
}

// rechecks holds the re-check groups of one [Server].
type rechecks struct {
	owner *Server

	mu     sync.Mutex
	groups map[string]*recheckGroup
}

// recheckGroup is the tunnels of one session; its fields are guarded by
// rechecks.mu. It is on the wheel, due at next, while it has members.
type recheckGroup struct {
	rc      *rechecks
	key     string
	members map[recheckMember]struct{}
	every   time.Duration // the shortest interval of the members
	next    time.Time     // the next re-check; zero while one runs
	// downSince is when the identity provider first failed to answer in
	// the current run of failed re-checks; zero after an answer.
	downSince time.Time
}

// recheckKey names the re-check group of a tunnel.
func recheckKey(authenticator string, k ChannelKeys, tunnelID string) string {
	switch {
	case k.SessionID != "":
		return "s\x00" + authenticator + "\x00" + k.SessionID
	case k.Credential != "":
		return "c\x00" + authenticator + "\x00" + k.Credential
	default:
		return "t\x00" + tunnelID
	}
}

// jittered returns d shortened by a random part of up to a tenth of it.
func jittered(d time.Duration) time.Duration {
	if j := int64(d / 10); j > 0 {
		return d - time.Duration(rand.Int64N(j))
	}
	return d
}

// join adds t (with a Revalidator and a positive revalidate_every) to the
// group key.
func (rc *rechecks) join(t recheckMember, key string) {
	every := t.bound().policy.RevalidateEvery
	rc.mu.Lock()
	defer rc.mu.Unlock()
	g := rc.groups[key]
	fresh := g == nil
	if fresh {
		g = &recheckGroup{rc: rc, key: key, members: map[recheckMember]struct{}{}}
		rc.groups[key] = g
	}
	g.members[t] = struct{}{}
	t.bound().group = g
	if g.every != 0 && every >= g.every {
		return
	}
	g.every = every
	next := time.Now().Add(jittered(every))
	if fresh || !g.next.IsZero() && next.Before(g.next) {
		g.next = next
		rc.owner.wheel.Schedule(g, next)
	}
}

// leave removes t from its group; the last member stops the group.
func (rc *rechecks) leave(t recheckMember) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	b := t.bound()
	g := b.group
	if g == nil {
		return
	}
	b.group = nil
	delete(g.members, t)
	if len(g.members) == 0 {
		rc.owner.wheel.Remove(g)
		if rc.groups[g.key] == g {
			delete(rc.groups, g.key)
		}
		return
	}
	if b.policy.RevalidateEvery == g.every {
		// The shortest interval may have left with t; the next re-check
		// is scheduled with the remaining members' shortest.
		g.every = 0
		for m := range g.members {
			if every := m.bound().policy.RevalidateEvery; g.every == 0 || every < g.every {
				g.every = every
			}
		}
	}
}

// nextOf returns when b's session is re-checked next (zero: not scheduled,
// or a re-check is running).
func (rc *rechecks) nextOf(b *binding) time.Time {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	g := b.group
	if g == nil {
		return time.Time{}
	}
	return g.next
}

// count returns the number of re-check groups (sessions being re-checked).
func (rc *rechecks) count() int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return len(rc.groups)
}

// Due implements [wheelEntry]: at its time the group's re-check starts,
// in the rest (it waits for the identity provider).
func (g *recheckGroup) Due(now time.Time) func() {
	rc := g.rc
	rc.mu.Lock()
	defer rc.mu.Unlock()
	switch {
	case len(g.members) == 0 || rc.groups[g.key] != g || g.next.IsZero():
		return nil
	case now.Before(g.next):
		// Moved after this tick had collected it: the group is on the
		// wheel at its new time.
		rc.owner.wheel.Schedule(g, g.next)
		return nil
	}
	var first recheckMember
	for m := range g.members {
		first = m
		break
	}
	g.next = time.Time{}
	rv, keys := first.bound().reval, first.bound().keys
	return func() { rc.fire(g, rv, keys) }
}

// fire runs the group's re-check with one member's credential (they share
// the session) and applies the outcome to all members; the ones it ends
// close in one batch.
func (rc *rechecks) fire(g *recheckGroup, rv pipeline.Revalidator, keys ChannelKeys) {

	ctx, cancel := context.WithTimeout(context.Background(), rc.owner.opts.RevalidateTimeout)
	expiresAt, err := rv.Revalidate(ctx)
	cancel()
	now := time.Now()
	status := pipeline.StatusOf(err)
	rejected := err != nil && (status == http.StatusUnauthorized || status == http.StatusForbidden)

	rc.mu.Lock()
	switch {
	case err == nil:
		g.downSince = time.Time{}
	case !rejected && g.downSince.IsZero():
		g.downSince = now
	}
	downSince := g.downSince
	members := make([]recheckMember, 0, len(g.members))
	for m := range g.members {
		members = append(members, m)
	}
	switch {
	case rejected && rc.groups[g.key] == g:
		// The members are closing; a tunnel of the session opened after
		// this (without a revocation service to refuse it) starts a group
		// of its own.
		delete(rc.groups, g.key)
	case !rejected && len(members) > 0 && rc.groups[g.key] == g:
		g.next = now.Add(jittered(g.every))
		rc.owner.wheel.Schedule(g, g.next)
	}
	rc.mu.Unlock()

	var ends []ending
	for _, m := range members {
		if c := m.applyRecheck(now, expiresAt, err, downSince); c != nil {
			ends = append(ends, ending{ch: m, c: c})
		}
	}
	rc.owner.endAll(ends)
	if err == nil {
		return
	}
	entry := rc.owner.log.WithFields(logrus.Fields{
		"rule": keys.Rule, "subject": keys.Subject, "session_id": keys.SessionID,
		"tunnels": len(members), "status": status, "error": err.Error(),
	})
	if !rejected {
		entry.Warn("websocket session could not be revalidated; tunnel kept open where the rule tolerates it")
		return
	}
	entry.Info("websocket session rejected at revalidation; its tunnels close")
	if rc.owner.rev != nil {
		rc.owner.rev.Rejected(keys.SessionID, keys.Subject, keys.Rule)
	}
}

// recheckLocked applies the outcome of the re-check the channel's session
// group made at now to the deadlines and returns the cause to end the
// channel for, nil to keep it: err nil with the session's current expiry
// (which replaces the channel's, in either direction, when bound to the
// session, and ends it when already past); a rejection (401, 403) ends it
// with "session revoked"; an identity provider that cannot answer (503,
// timeout, any other error) ends it too, unless the policy tolerates
// unavailability and the outage, counted from downSince, is shorter than
// the policy's unavailable grace. b.mu is held and the channel is not
// ending.
func (b *binding) recheckLocked(now, expiresAt time.Time, err error, downSince time.Time) *closeCause {
	status := pipeline.StatusOf(err)
	switch {
	case err == nil:
		if !expiresAt.IsZero() {
			b.sessionExp = expiresAt
		}
		if b.policy.BindToSession && !expiresAt.IsZero() {
			b.expiresAt = expiresAt
			if !now.Before(expiresAt) {
				return &causeSessionExpired
			}
		}
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return &causeSessionRevoked
	case !b.policy.TolerateUnavailable || now.Sub(downSince) >= b.policy.UnavailableGrace:
		return &causeRevalidationUnavailable
	}
	return nil
}

// applyRecheck implements recheckMember: the outcome of the re-check the
// tunnel's session group made at now ([binding.recheckLocked]) is the
// cause to end the tunnel for, or moves its deadlines.
func (t *tunnel) applyRecheck(now, expiresAt time.Time, err error, downSince time.Time) *closeCause {
	var c *closeCause
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.closing && !t.torn {
		c = t.recheckLocked(now, expiresAt, err, downSince)
	}
	if c == nil {
		t.scheduleLocked()
	}
	return c
}

// applyRecheck implements recheckMember, as [tunnel.applyRecheck] does.
func (s *stream) applyRecheck(now, expiresAt time.Time, err error, downSince time.Time) *closeCause {
	var c *closeCause
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cause == nil && s.ended == "" {
		c = s.recheckLocked(now, expiresAt, err, downSince)
	}
	if c == nil {
		s.scheduleLocked()
	}
	return c
}
