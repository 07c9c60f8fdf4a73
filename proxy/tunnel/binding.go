package tunnel

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"

	"github.com/portcullis-proxy/portcullis/pipeline"
)

// binding is what a live channel — a WebSocket [tunnel] or a governed
// [stream] — is bound to: the rule and the session that admitted it, the
// rule's policy, and the deadlines that follow from them. Both kinds embed
// it, so that they are registered, described, re-checked and timed out by
// the same code; they differ only in how they end.
type binding struct {
	owner         *Server
	rule          string
	subject       string
	authenticator string // the admitting authenticator: it names the re-check group
	reval         pipeline.Revalidator
	start         time.Time
	id            string        // the registry's id
	keys          ChannelKeys   // what the registry indexes the channel by
	remote        string        // the client's address
	group         *recheckGroup // guarded by owner.checks.mu; nil: no re-check

	// pol is the rule's policy; a rules reload that changes it replaces
	// it (under mu, see follow.go). Read it through policy.
	pol atomic.Pointer[pipeline.WebSocketPolicy]

	// lastActive is the unix nanoseconds of the last traffic: a read
	// either way for a tunnel, a byte from the upstream for a stream.
	lastActive atomic.Int64

	// mu guards the deadlines below, the rule the channel is under and
	// the embedding channel's own state.
	mu         sync.Mutex
	maxAt      time.Time // zero: no cap
	expiresAt  time.Time // zero: not bound to the session, or its expiry unknown
	sessionExp time.Time // the session's expiry as last learnt, bound or not
	hold       ruleHold  // the compiled rule: re-authorization, rules reloads
}

// bind fills b for a channel opened at now under the rule ruleID with
// policy p for session s (nil: anonymous, nothing to bind to). rule, when
// set, is the compiled rule (its id and policy are ruleID and p; the
// channel reads the rule's own, immutable, policy): the channel then
// re-authorizes through it and follows rules reloads.
func (b *binding) bind(owner *Server, ruleID string, p pipeline.WebSocketPolicy, rule pipeline.ChannelRule, s *pipeline.Session, remote string, now time.Time) {
	b.owner, b.rule, b.start, b.remote = owner, ruleID, now, remote
	if rule != nil {
		b.pol.Store(rule.Policy()) // shared, and p's source
	} else {
		b.pol.Store(&p)
	}
	b.keys.Rule = ruleID
	if s != nil {
		b.subject, b.reval, b.authenticator = s.Subject, s.Revalidator, s.Authenticator
		b.keys.SessionID, b.keys.Subject, b.keys.Credential = s.SessionID, s.Subject, s.CredentialID
		b.sessionExp = s.ExpiresAt
		if p.BindToSession {
			b.expiresAt = s.ExpiresAt
		}
		if rule != nil && s.MatchContext.URL != nil {
			b.hold = holdOf(ruleID, rule, s, remote)
		}
	}
	if p.MaxLifetime > 0 {
		b.maxAt = now.Add(p.MaxLifetime)
	}
	b.lastActive.Store(now.UnixNano())
}

// policy returns the channel's current policy (shared: never modified).
func (b *binding) policy() *pipeline.WebSocketPolicy { return b.pol.Load() }

// rechecksLocked reports whether the channel takes part in the session's
// coalesced re-checks: its rule asks for them (revalidate_every) and there
// is something to check again: the authenticator can re-validate, or the
// rule re-authorizes. b.mu is held, or the channel is not shared yet.
func (b *binding) rechecksLocked() bool {
	return b.policy().RevalidateEvery > 0 && (b.reval != nil || b.reauthorizesLocked())
}

// checkKey names the channel's re-check group (see [recheckKey]).
func (b *binding) checkKey() string { return recheckKey(b.authenticator, b.keys, b.id) }

// describe completes info, which holds what only the channel knows (its
// kind, bytes, origin), with what it is bound to and its next deadline.
func (b *binding) describe(info ChannelInfo) ChannelInfo {
	info.Rule, info.Subject, info.SessionID = b.rule, b.subject, b.keys.SessionID
	info.OpenedAt, info.ClientAddress = b.start, b.remote
	var next earliest
	next.consider(b.owner.checks.nextOf(b), "revalidation")
	b.mu.Lock()
	next.consider(b.maxAt, ReasonMaxLifetime)
	next.consider(b.expiresAt, ReasonSessionExpired)
	if !b.sessionExp.IsZero() {
		exp := b.sessionExp
		info.SessionExpiresAt = &exp
	}
	b.mu.Unlock()
	next.consider(b.idleAt(), ReasonIdleTimeout)
	if !next.at.IsZero() {
		info.NextDeadline, info.NextDeadlineReason = &next.at, next.why
	}
	return info
}

// revokeCause is the cause a revocation with the Close reason text ends a
// channel for: 1008, ReasonSessionRevoked in logs and metrics, and text or
// "session revoked" when it is empty. A tunnel's Close frames carry the
// text cut to fit (closeReasonText), a stream's final event all of it; the
// client's frame is encoded once, for every channel the cause ends.
func revokeCause(text string) *closeCause {
	if text == "" {
		return &causeSessionRevoked
	}
	c := proxyCause(ReasonSessionRevoked, ws.StatusPolicyViolation, text)
	return &c
}
