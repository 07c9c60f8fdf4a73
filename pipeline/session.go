package pipeline

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// MatchContext describes the request a rule matched. Templates see it as
// .MatchContext, with the same field names Oathkeeper uses.
type MatchContext struct {
	// RegexpCaptureGroups holds the sub-matches of the rule's match.url
	// pattern, in order (glob rules have none).
	RegexpCaptureGroups []string `json:"regexp_capture_groups"`
	// URL is the request URL as matched: scheme, host, path and query.
	URL *url.URL `json:"url"`
	// Method is the request method.
	Method string `json:"method"`
	// Header is the header the client sent (read-only for handlers).
	Header http.Header `json:"header"`
}

// Session is what one request accumulates while it flows through a rule:
// the identity found by the authenticator, what the authorizer may read and
// what the mutators add for the upstream. A Session is owned by one request
// and is not safe for concurrent use.
type Session struct {
	// Subject identifies the principal ("" for noop, "anonymous" for anonymous).
	Subject string `json:"subject"`
	// Extra carries what the authenticator learnt beyond the subject
	// (for Kratos sessions, typically the whole session document).
	Extra map[string]any `json:"extra"`
	// Header is what the mutators set for the upstream. Every key replaces
	// whatever the client sent under that name.
	Header http.Header `json:"header"`
	// MatchContext describes the matched request.
	MatchContext MatchContext `json:"match_context"`

	// ExpiresAt is when the identity stops being valid; zero means unknown.
	// A WebSocket tunnel bound to the session closes at this time.
	ExpiresAt time.Time `json:"-"`
	// SessionID is the identity provider's id of the session, if any:
	// Kratos's session id, a JWT's sid (else its jti), an introspection
	// answer's sid. Revocations name sessions by it.
	SessionID string `json:"-"`
	// CredentialID is a hash of the credential that admitted the request
	// (hex SHA-256), never the credential itself; empty when none.
	CredentialID string `json:"-"`
	// Authenticator names the handler that admitted the request.
	Authenticator string `json:"-"`
	// Revalidator, when set by the admitting authenticator, re-checks the
	// credential that admitted the request (used by long-lived tunnels).
	Revalidator Revalidator `json:"-"`
	// Scrub lists credential carriers the proxy removes from the request
	// before it goes upstream.
	Scrub Scrub `json:"-"`
	// Cookies are set on the upstream request by the proxy, replacing
	// client cookies of the same name (see the cookie mutator).
	Cookies map[string]string `json:"-"`
}

// NewSession returns an empty session for the request r with the given
// capture groups.
func NewSession(r *http.Request, u *url.URL, groups []string) *Session {
	if groups == nil {
		groups = []string{}
	}
	return &Session{
		Extra:  map[string]any{},
		Header: http.Header{},
		MatchContext: MatchContext{
			RegexpCaptureGroups: groups,
			URL:                 u,
			Method:              r.Method,
			Header:              r.Header,
		},
	}
}

// SetHeader sets a header for the upstream, replacing any earlier value.
func (s *Session) SetHeader(key, value string) {
	if s.Header == nil {
		s.Header = http.Header{}
	}
	s.Header.Set(key, value)
}

// Scrub names credential carriers the proxy must not forward upstream.
type Scrub struct {
	// QueryParams are query parameter names removed from the upstream URL.
	QueryParams []string
	// Subprotocols are exact Sec-WebSocket-Protocol entries removed from the
	// upstream handshake and never echoed back to the client.
	Subprotocols []string
	// SubprotocolPrefixes remove every Sec-WebSocket-Protocol entry that
	// starts with one of them (a token carrier "<prefix><token>"), whether
	// or not the authenticator reading it ran.
	SubprotocolPrefixes []string
	// Headers are request header names removed before the upstream request
	// (headers set by mutators are applied afterwards and survive).
	Headers []string
}

// Merge returns the union of s and o (s's entries first, no duplicates).
func (s Scrub) Merge(o Scrub) Scrub {
	return Scrub{
		QueryParams:         union(s.QueryParams, o.QueryParams),
		Subprotocols:        union(s.Subprotocols, o.Subprotocols),
		SubprotocolPrefixes: union(s.SubprotocolPrefixes, o.SubprotocolPrefixes),
		Headers:             union(s.Headers, o.Headers),
	}
}

// DropsSubprotocol reports whether the Sec-WebSocket-Protocol entry e is a
// credential carrier: one of Subprotocols, or one starting with one of
// SubprotocolPrefixes.
func (s Scrub) DropsSubprotocol(e string) bool {
	for _, x := range s.Subprotocols {
		if e == x {
			return true
		}
	}
	for _, p := range s.SubprotocolPrefixes {
		if strings.HasPrefix(e, p) {
			return true
		}
	}
	return false
}

// union returns a with b's new entries appended. The result is clipped
// (capacity equal to length), so appending to it never writes into a's
// backing array: a rule's carriers are shared by all its requests.
func union(a, b []string) []string {
	if len(b) == 0 {
		return slices.Clip(a)
	}
	out := append([]string(nil), a...)
	for _, x := range b {
		if !slices.Contains(out, x) {
			out = append(out, x)
		}
	}
	return slices.Clip(out)
}

// CarrierReader is implemented by an authenticator that reads its
// credential from a carrier the proxy must never forward (a query
// parameter, a Sec-WebSocket-Protocol entry). Carriers returns them, once,
// when the rule is compiled: a rule removes the carriers of all its
// authenticators from every request it serves, whichever authenticator
// decides, or none.
type CarrierReader interface {
	Carriers() Scrub
}

// Identity is what the identity provider says of a session when a
// [Revalidator] checks it again: the same fields, read the same way, as the
// authenticator filled in the [Session] that admitted the request.
type Identity struct {
	// Subject is the session's subject now.
	Subject string
	// Extra is what the authenticator learnt beyond the subject now (a
	// map of its own, which the caller may keep).
	Extra map[string]any
	// ExpiresAt is the session's expiry now; zero means unknown.
	ExpiresAt time.Time
}

// Revalidator re-checks the credential that admitted a session, bypassing
// any cache. It returns the session as the identity provider describes it
// now: its subject, extra and expiry, which a re-authorization hands to the
// rule's authorizer. A rejected credential (or one that now names another
// subject) returns an error whose status is 401 or 403; an identity
// provider that cannot be reached returns one with status 503.
type Revalidator interface {
	Revalidate(ctx context.Context) (Identity, error)
}

// RevalidatorFunc adapts a function to [Revalidator].
type RevalidatorFunc func(ctx context.Context) (Identity, error)

// Revalidate calls f.
func (f RevalidatorFunc) Revalidate(ctx context.Context) (Identity, error) { return f(ctx) }

// CredentialID returns the hex SHA-256 of a credential, the form in which
// [Session.CredentialID] names it.
func CredentialID(credential string) string {
	sum := sha256.Sum256([]byte(credential))
	return hex.EncodeToString(sum[:])
}
