package tunnel

import (
	"context"
	"net/http"
	"time"

	"github.com/gobwas/ws"
	"github.com/sirupsen/logrus"

	"github.com/portcullis-proxy/portcullis/pipeline"
)

// Continuous authorization. A channel opened under a compiled rule whose
// policy says reauthorize is decided again at every re-check of its
// session: once the identity provider has answered (or, for a session the
// authenticator cannot re-validate, with the identity that admitted it),
// the rule's authorizer runs with the session as it is now
// ([pipeline.ChannelRule.Reauthorize]).
//
// The identity provider is still asked once per session per interval; the
// authorizer once per decision: channels of one session under one rule
// that opened the same URL (method and URL, query included) share one call,
// which sees the request of one of them. Channels of the session that
// opened other URLs (another chat room) are other decisions: the
// authorizer's input differs.
//
// A deny ends the decision's channels with 1008 "access revoked"; an
// authorizer that cannot be reached (503, 504, 429, a timeout) ends them
// with 1008 "access could not be reauthorized" unless the policy tolerates
// unavailability, for at most unavailable_grace counted from the
// authorizer's first failure. A deny is a decision about one request, not
// about the session: it is not reported to [Revocations] (the session's
// other channels stay, on this replica and the others, which decide their
// own channels at their own re-checks).

// Reasons a channel ends that continuous authorization and rules reloads
// add, as passed to [Metrics.Closed] and logged.
const (
	ReasonAccessRevoked            = "access_revoked"            // the rule's authorizer now denies
	ReasonAuthorizationUnavailable = "authorization_unavailable" // the rule's authorizer could not be reached
	ReasonRuleChanged              = "rule_changed"              // a reload removed or replaced the rule
)

var (
	causeAccessRevoked            = proxyCause(ReasonAccessRevoked, ws.StatusPolicyViolation, "access revoked")
	causeAuthorizationUnavailable = proxyCause(ReasonAuthorizationUnavailable, ws.StatusPolicyViolation, "access could not be reauthorized")
	causeRuleChanged              = proxyCause(ReasonRuleChanged, ws.StatusPolicyViolation, "rule changed")
)

// ruleHold is what a channel keeps of the compiled rule that admitted it.
// It is guarded by binding.mu: a rules reload rebinds it.
type ruleHold struct {
	// compiled is the rule the channel is under now: the admitting one,
	// or its copy in the rule set a reload installed. Nil: the channel was
	// opened without a compiled rule and neither re-authorizes nor follows
	// reloads.
	compiled pipeline.ChannelRule
	// admission is the channel's request, as the rule set matched it.
	admission *pipeline.Admission
	// identity is the admitting session's, which re-authorizations of a
	// session without a Revalidator decide on; nil for the others.
	identity *pipeline.Identity
	// decision names the channel's authorization decision (rule id,
	// method, URL): channels of one group with equal decisions share one
	// authorizer call. "" when the channel cannot be re-authorized (its
	// request header was not kept).
	decision string
}

// holdOf is what a channel opened under rule (whose id is ruleID) for
// session s, from the client address remote, keeps of them.
func holdOf(ruleID string, rule pipeline.ChannelRule, s *pipeline.Session, remote string) ruleHold {
	// An idle tunnel's memory is watched: what only re-authorization
	// needs is kept only when the channel can be re-authorized.
	a := rule.Admit(s, remote)
	h := ruleHold{compiled: rule, admission: a}
	if a.Reauthorizable() {
		h.decision = ruleID + "\x00" + a.Method + " " + a.URL.String()
		if s.Revalidator == nil {
			h.identity = &pipeline.Identity{Subject: s.Subject, Extra: s.Extra, ExpiresAt: s.ExpiresAt}
		}
	}
	return h
}

// reauthorizesLocked reports whether the channel's re-checks run the
// rule's authorizer: its policy says so and its request was kept to decide
// on. b.mu is held.
func (b *binding) reauthorizesLocked() bool {
	return b.hold.compiled != nil && b.policy().Reauthorize && b.hold.admission.Reauthorizable()
}

// decisionOf returns, when the channel re-authorizes, its decision and the
// rule and request to decide with.
func (b *binding) decisionOf() (key string, rule pipeline.ChannelRule, a *pipeline.Admission, ok bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.reauthorizesLocked() {
		return "", nil, nil, false
	}
	return b.hold.decision, b.hold.compiled, b.hold.admission, true
}

// reauthorize runs the authorizer once for each decision among members
// (those that re-authorize), with the identity id the re-check found, and
// returns the answers by decision (see [ruleHold]).
func (rc *rechecks) reauthorize(members []recheckMember, id pipeline.Identity) map[string]error {
	type call struct {
		rule pipeline.ChannelRule
		a    *pipeline.Admission
	}
	calls := map[string]call{}
	var order []string
	for _, m := range members {
		key, rule, a, ok := m.bound().decisionOf()
		if _, dup := calls[key]; !ok || dup {
			continue
		}
		calls[key] = call{rule, a}
		order = append(order, key)
	}
	if len(calls) == 0 {
		return nil
	}
	answers := make(map[string]error, len(calls))
	for _, key := range order {
		ctx, cancel := context.WithTimeout(context.Background(), rc.owner.opts.RevalidateTimeout)
		answers[key] = calls[key].rule.Reauthorize(ctx, calls[key].a, id)
		cancel()
	}
	return answers
}

// decision is one re-authorization's answer as a member gets it: err nil
// allows; downSince is when the authorizer's current outage began.
type decision struct {
	err       error
	downSince time.Time
}

// authorizerUnavailable reports whether err says the authorizer could not
// decide (unreachable, timed out, overloaded) rather than deny.
func authorizerUnavailable(err error) bool {
	switch pipeline.StatusOf(err) {
	case http.StatusServiceUnavailable, http.StatusGatewayTimeout, http.StatusTooManyRequests:
		return true
	}
	return false
}

// decisions records the answers in the group's outage bookkeeping and
// returns them with their outages, by the members' decision keys; rc.mu is
// held.
func (g *recheckGroup) decisions(answers map[string]error, now time.Time) map[string]decision {
	if answers == nil {
		return nil
	}
	out := make(map[string]decision, len(answers))
	for key, err := range answers {
		switch {
		case !authorizerUnavailable(err):
			delete(g.authzDown, key)
		case g.authzDown[key].IsZero():
			g.authzDown[key] = now
		}
		out[key] = decision{err: err, downSince: g.authzDown[key]}
	}
	return out
}

// causeLocked returns the cause to end a channel for whose
// re-authorization answered d under policy p at now: none when allowed;
// "access could not be reauthorized" for an authorizer that could not be
// reached, unless p tolerates it and the outage is shorter than its grace;
// "access revoked" for any other answer (a deny, or an authorizer that
// failed: closed, as the first decision would have been).
func (d decision) causeLocked(p *pipeline.WebSocketPolicy, now time.Time) *closeCause {
	switch {
	case d.err == nil:
		return nil
	case !authorizerUnavailable(d.err):
		return &causeAccessRevoked
	case !p.TolerateUnavailable || now.Sub(d.downSince) >= p.UnavailableGrace:
		return &causeAuthorizationUnavailable
	}
	return nil
}

// logDecisions logs each re-authorization that did not allow, with how
// many of the group's channels it decided.
func (rc *rechecks) logDecisions(keys ChannelKeys, members []recheckMember, answers map[string]error) {
	for key, err := range answers {
		if err == nil {
			continue
		}
		n := 0
		for _, m := range members {
			if k, _, _, ok := m.bound().decisionOf(); ok && k == key {
				n++
			}
		}
		entry := rc.owner.log.WithFields(logrus.Fields{
			"rule": keys.Rule, "subject": keys.Subject, "session_id": keys.SessionID,
			"tunnels": n, "status": pipeline.StatusOf(err), "error": err.Error(),
		})
		if authorizerUnavailable(err) {
			entry.Warn("authorizer could not be reached at re-authorization; tunnels kept open where the rule tolerates it")
			continue
		}
		entry.Info("access revoked at re-authorization; the tunnels of the decision close")
	}
}
