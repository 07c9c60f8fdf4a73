package pipeline

// The contract between the rule set and the server of long-lived
// channels: what a channel keeps of the rule that admitted it and of its
// request, and what a new rule set means for it. rules implements it; the
// channel server (proxy/tunnel) uses only this.

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// WebSocketPolicy is the resolved policy of one rule's long-lived
// channels (WebSocket tunnels and governed streams): what the rule
// compiler makes of the websocket blocks, and what the channel server
// enforces. A compiled rule's policy is shared by its channels and never
// changed.
type WebSocketPolicy struct {
	MaxLifetime     time.Duration
	BindToSession   bool
	RevalidateEvery time.Duration
	// Reauthorize re-runs the rule's authorizer at every re-check; the
	// rule compiler resolves its default.
	Reauthorize         bool
	TolerateUnavailable bool
	UnavailableGrace    time.Duration
	IdleTimeout         time.Duration
	AllowedOrigins      map[string]bool // lower-cased, default ports removed; nil: same-origin only
	AnyOrigin           bool            // allowed_origins: ["*"]
	MaxConnections      int
	ForwardCookies      bool
	CloseGrace          time.Duration
	// StreamCloseEvent is the final event's type on a text/event-stream
	// the proxy ends; "": no final event.
	StreamCloseEvent string
}

// Admission is what a live channel (a WebSocket tunnel, a governed stream)
// keeps of the request that opened it: enough to run the rule's authorizer
// again at each re-check ([ChannelRule.Reauthorize]) and to match the request
// again when the rules change ([ChannelRules.Reevaluate]). It is immutable.
type Admission struct {
	// Method is the request's method.
	Method string
	// URL is the URL the rule set matched: the scheme and host portcullis
	// believed, the cleaned path (RawPath set when the client's encoding
	// differed), the query.
	URL *url.URL
	// Header is the client's request header as the stages saw it; nil
	// when the rule did not re-authorize when the channel opened (see
	// [ChannelRule.Admit]). It may hold the credential (Cookie,
	// Authorization): an authorizer such as remote sends the Authorization
	// header to its decision API again.
	Header http.Header
	// RemoteAddr is the client's address (ladon's remote_ip).
	RemoteAddr string
}

// Reauthorizable reports whether a channel admitted with a can be
// re-authorized: its request header was kept.
func (a *Admission) Reauthorizable() bool { return a.Header != nil }

// ChannelRule is the compiled rule a live channel is under, as the channel
// server needs it.
type ChannelRule interface {
	// Policy is the rule's resolved policy; it is shared and never changed.
	Policy() *WebSocketPolicy
	// Admit records what a channel opened under the rule keeps of its
	// request: the request the allowed session s was found for (its
	// MatchContext) and the client's address.
	Admit(s *Session, remoteAddr string) *Admission
	// Reauthorize runs the rule's authorizer again for the channel a
	// admitted, with the session as the identity provider describes it
	// now (id); nil means the channel may stay. ctx bounds the call.
	Reauthorize(ctx context.Context, a *Admission, id Identity) error
}

// ChannelRules is a rule set as live channels follow it across a reload.
type ChannelRules interface {
	// Reevaluate decides what the set means for a channel admitted by a
	// under old, a rule of an earlier set.
	Reevaluate(old ChannelRule, a *Admission) Reevaluation
}

// Reevaluation is what a new rule set means for a live channel opened
// under a rule ([ChannelRules.Reevaluate]).
type Reevaluation struct {
	// Rule is the rule the channel is under from now on: the new set's
	// compiled rule, with the same id (its handlers are the new set's).
	// Nil: the channel's request now selects no rule, another rule, or a
	// rule with the same id whose authenticators, mutators or upstream
	// changed; it must close ("rule changed").
	Rule ChannelRule
	// PolicyChanged says that Rule's policy differs from the old one: the
	// new limits apply from now.
	PolicyChanged bool
	// AuthorizerChanged says that Rule's authorizer (or its effective
	// config) differs: the decision that admitted the channel was made by
	// an authorizer the rule no longer has, and must be made again at once.
	AuthorizerChanged bool
}

// OriginAllowed reports whether an upgrade carrying the Origin header
// values origins may proceed, self being the request's own origin
// (scheme://host as portcullis sees them). No Origin (not a browser)
// passes; more than one is refused; otherwise the origin must be listed,
// or, without a list, be self (same-origin: a cross-site page cannot open
// a cookie-authenticated WebSocket); allowed_origins: ["*"] allows any.
// Origins compare case-insensitively, default ports ignored.
func (p WebSocketPolicy) OriginAllowed(origins []string, self string) bool {
	switch {
	case len(origins) == 0:
		return true
	case len(origins) > 1:
		return false
	case p.AnyOrigin:
		return true
	}
	u, err := url.Parse(origins[0])
	if err != nil || u.Scheme == "" || u.Host == "" || u.Opaque != "" || (u.Path != "" && u.Path != "/") || u.User != nil {
		return false // "null" and anything else that is not an origin
	}
	o := NormalizeOrigin(u.Scheme, u.Host)
	if p.AllowedOrigins != nil {
		return p.AllowedOrigins[o]
	}
	return self != "" && o == self
}

// NormalizeOrigin renders scheme://host for comparison: lower case, the
// scheme's default port (80 for http and ws, 443 for https and wss)
// removed.
func NormalizeOrigin(scheme, host string) string {
	scheme, host = strings.ToLower(scheme), strings.ToLower(host)
	switch {
	case (scheme == "http" || scheme == "ws") && strings.HasSuffix(host, ":80"):
		host = strings.TrimSuffix(host, ":80")
	case (scheme == "https" || scheme == "wss") && strings.HasSuffix(host, ":443"):
		host = strings.TrimSuffix(host, ":443")
	}
	return scheme + "://" + host
}
