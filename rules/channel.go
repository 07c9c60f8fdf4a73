package rules

import (
	"context"
	"errors"
	"maps"
	"net/http"

	"github.com/portcullis-proxy/portcullis/pipeline"
)

// A compiled rule is what live channels are under, and a set is what they
// follow across reloads.
var (
	_ pipeline.ChannelRule  = (*Compiled)(nil)
	_ pipeline.ChannelRules = (*Set)(nil)
)

// Policy is the rule's resolved channel policy, shared by its channels.
func (c *Compiled) Policy() *pipeline.WebSocketPolicy { return &c.WebSocketPolicy.WebSocketPolicy }

// Admit records what a channel opened under c keeps of its request: the
// request an allowed session s was found for (its MatchContext) and the
// client's address. The header is kept only when c's policy re-authorizes
// (it is what the authorizer reads again); a channel without it is
// re-matched on reloads, never re-authorized. The URL and the header are
// copies: the request may change after the channel opens.
func (c *Compiled) Admit(s *pipeline.Session, remoteAddr string) *pipeline.Admission {
	a := &pipeline.Admission{Method: s.MatchContext.Method, RemoteAddr: remoteAddr}
	if u := s.MatchContext.URL; u != nil {
		v := *u
		a.URL = &v
	}
	if c.WebSocketPolicy.Reauthorize {
		a.Header = s.MatchContext.Header.Clone()
		if a.Header == nil {
			a.Header = http.Header{}
		}
	}
	return a
}

// ErrNoLongerMatches is the denial of [Compiled.Reauthorize] for an
// admission the rule's pattern no longer matches (or one that kept no
// request header to decide on). The denial is a 403 [*pipeline.Error]
// whose cause is ErrNoLongerMatches.
const ErrNoLongerMatches pipeline.Sentinel = "the request no longer matches the rule"

// Reauthorize runs the rule's authorizer again for the channel a admitted,
// with the session as the identity provider describes it now (id): the
// authorizer sees the original request (method, URL, header, client
// address, the pattern's capture groups) and a session whose Subject and
// Extra are id's. No authenticator and no mutator runs. A nil error means
// the channel may stay; a denial is a [*StageError] of the authorizer
// stage whose status ([pipeline.StatusOf]) tells a considered "no" (401,
// 403, or any other error) from an authorizer that could not be reached
// (503, 504, 429).
//
// ctx bounds the call (a remote authorizer's request).
func (c *Compiled) Reauthorize(ctx context.Context, a *pipeline.Admission, id pipeline.Identity) error {
	name := c.Rule.Authorizer.Handler
	groups, ok := c.pattern.match(MatchURL(a.URL))
	if !ok || !c.methods[a.Method] || !a.Reauthorizable() {
		return &StageError{Stage: StageAuthorizer, Handler: name, Err: pipeline.NewError(http.StatusForbidden, "", ErrNoLongerMatches)}
	}
	r := (&http.Request{
		Method:     a.Method,
		URL:        a.URL,
		Host:       a.URL.Host,
		Header:     a.Header,
		Body:       http.NoBody,
		RemoteAddr: a.RemoteAddr,
		Proto:      "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
	}).WithContext(ctx)
	s := pipeline.NewSession(r, a.URL, groups)
	s.Subject = id.Subject
	if id.Extra != nil {
		s.Extra = maps.Clone(id.Extra)
	}
	s.ExpiresAt = id.ExpiresAt
	if err := c.authorizer.Authorize(r, s); err != nil {
		return &StageError{Stage: StageAuthorizer, Handler: name, Err: err}
	}
	return nil
}

// Reevaluate decides what the set s means for a channel admitted by a
// under old, a rule of an earlier set. An unchanged rule (the same id and
// definition, see [definition]) keeps the channel as it is, under the new
// compiled rule. Otherwise a's request is matched again, as the decision
// path matches it (exactly one rule; the same rule for the path as received
// and as cleaned): no rule, several, or a rule with another id, or the same
// id with other authenticators, mutators or upstream, closes the channel;
// the same id with the same pipeline keeps it, with whatever changed in the
// policy and the authorizer flagged. A rule compiled elsewhere than by this
// package is never kept.
func (s *Set) Reevaluate(prev pipeline.ChannelRule, a *pipeline.Admission) pipeline.Reevaluation {
	old, ok := prev.(*Compiled)
	if !ok || old == nil {
		return pipeline.Reevaluation{}
	}
	if c, ok := s.byID[old.ID]; ok && c.def == old.def && c.WebSocketPolicy.Equal(old.WebSocketPolicy) {
		return pipeline.Reevaluation{Rule: c}
	}
	c, _, err := s.Match(a.Method, a.URL)
	if err == nil && a.URL.RawPath != "" && !c.MatchesPath(a.URL, a.URL.RawPath) {
		err = errors.New("ambiguous path")
	}
	if err != nil || c.ID != old.ID || c.def.pipeline != old.def.pipeline {
		return pipeline.Reevaluation{}
	}
	return pipeline.Reevaluation{
		Rule:              c,
		PolicyChanged:     !c.WebSocketPolicy.Equal(old.WebSocketPolicy),
		AuthorizerChanged: c.def.authorizer != old.def.authorizer,
	}
}
