package proxy

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/portcullis-proxy/portcullis/pipeline"
	"github.com/portcullis-proxy/portcullis/proxy/tunnel"
)

// Revocation is one revocation a front end asks for: at least one of
// SessionID, Subject and Rule is set.
type Revocation struct {
	SessionID, Subject, Rule string
	// Reason is the Close frame's reason ("session revoked" when empty).
	Reason string
	// Source names who asked: "admin", "logout".
	Source string
	// Until is the session's expiry when known: how long to remember it.
	Until time.Time
}

// Revoker applies a revocation on this replica and spreads it to the
// others, returning how many live channels of this replica it closed. The
// process's revocation service implements it (internal/app adapts it).
type Revoker interface {
	Revoke(r Revocation) int
}

// Sources of the revocations the proxy package makes.
const (
	SourceAdmin  = "admin"
	SourceLogout = "logout"
)

// AdminOptions configure [NewAdmin].
type AdminOptions struct {
	// Token is the bearer token every admin request must carry; required
	// (no token, no admin API).
	Token string
	// Channels lists the live channels of this replica.
	Channels Channels
	// Revoker applies revocations.
	Revoker Revoker
	// Rules, when set, adds POST /admin/explain: the explanation of the
	// decision for a request described in the body (see [ExplainHandler]).
	Rules RuleSource
}

// Channels lists the live channels of this replica, as the admin API shows
// them. *tunnel.Registry implements it.
type Channels interface {
	// Describe returns the channels matching s, in the order they opened.
	Describe(s tunnel.Selector) []tunnel.ChannelInfo
}

// Admin serves the admin API under /admin/ on the API listener. Every
// request must carry "Authorization: Bearer <token>"; the token is
// compared in constant time, a missing or wrong one is answered 401 with a
// JSON body, and it is never logged or echoed.
type Admin struct {
	tokenSum [sha256.Size]byte
	channels Channels
	revoker  Revoker
	explain  http.Handler // nil without AdminOptions.Rules
}

// NewAdmin returns the admin API; o.Token must not be empty.
func NewAdmin(o AdminOptions) (*Admin, error) {
	if o.Token == "" {
		return nil, errors.New("admin API: a token is required")
	}
	if o.Channels == nil || o.Revoker == nil {
		return nil, errors.New("admin API: channels and revoker are required")
	}
	a := &Admin{tokenSum: sha256.Sum256([]byte(o.Token)), channels: o.Channels, revoker: o.Revoker}
	if o.Rules != nil {
		a.explain = ExplainHandler(o.Rules)
	}
	return a, nil
}

// adminEndpoint is one admin route: a net/http pattern and its handler.
type adminEndpoint struct {
	pattern string
	handler http.HandlerFunc
}

// endpoints is the one list of the admin API's routes; each is served
// behind the token check.
func (a *Admin) endpoints() []adminEndpoint {
	eps := []adminEndpoint{
		{"GET /admin/tunnels", a.listTunnels},
		{"POST /admin/revocations", a.revoke},
	}
	if a.explain != nil {
		eps = append(eps, adminEndpoint{"POST /admin/explain", a.explain.ServeHTTP})
	}
	return eps
}

// Routes returns the admin routes (pattern → handler) to serve on the API
// listener, each behind the token check, plus a catch-all under /admin/
// so that unknown admin paths are 401 without the token (nothing about
// the API is disclosed) and 404 with it.
func (a *Admin) Routes() map[string]http.Handler {
	m := map[string]http.Handler{}
	for _, e := range a.endpoints() {
		m[e.pattern] = a.authorized(e.handler)
	}
	m["/admin/"] = a.authorized(func(w http.ResponseWriter, _ *http.Request) {
		pipeline.WriteError(w, pipeline.NewError(http.StatusNotFound, "no such admin endpoint", nil), false)
	})
	return m
}

// authorized runs h only for requests carrying the token.
func (a *Admin) authorized(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !a.tokenOK(r.Header.Get("Authorization")) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="portcullis admin"`)
			pipeline.WriteError(w, pipeline.Unauthorized("a valid admin token is required", nil), false)
			return
		}
		h(w, r)
	})
}

// tokenOK compares the presented token with the configured one in
// constant time: both are hashed first, so neither the content nor the
// length of the token leaks through timing.
func (a *Admin) tokenOK(header string) bool {
	scheme, tok, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	sum := sha256.Sum256([]byte(strings.TrimSpace(tok)))
	return subtle.ConstantTimeCompare(sum[:], a.tokenSum[:]) == 1
}

// listTunnels answers GET /admin/tunnels?subject=&session=&rule= with the
// live channels of this replica matching every given parameter.
func (a *Admin) listTunnels(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	sel := tunnel.Selector{SessionID: q.Get("session"), Subject: q.Get("subject"), Rule: q.Get("rule")}
	writeJSON(w, http.StatusOK, map[string]any{"tunnels": a.channels.Describe(sel)})
}

// revocationRequest is the body of POST /admin/revocations: exactly one of
// session_id, subject and rule, and an optional reason.
type revocationRequest struct {
	SessionID string `json:"session_id"`
	Subject   string `json:"subject"`
	Rule      string `json:"rule"`
	Reason    string `json:"reason"`
}

// sessionEnd returns the latest expiry this replica's channels know for the
// session (zero when none does), so that the revocation is remembered for
// the session's remaining lifetime rather than the longest allowed.
func (a *Admin) sessionEnd(sessionID string) time.Time {
	var end time.Time
	if sessionID == "" {
		return end
	}
	for _, ch := range a.channels.Describe(tunnel.Selector{SessionID: sessionID}) {
		if e := ch.SessionExpiresAt; e == nil {
			return time.Time{} // one channel does not know: do not guess
		} else if e.After(end) {
			end = *e
		}
	}
	return end
}

// maxAdminBody bounds an admin request body.
const maxAdminBody = 64 << 10

// revoke answers POST /admin/revocations: it closes every matching live
// channel on every replica (1008, the reason or "session revoked"), drops
// the session from the session caches, remembers a session or subject
// revocation, and answers {"closed": N} for this replica.
func (a *Admin) revoke(w http.ResponseWriter, r *http.Request) {
	var req revocationRequest
	dec := json.NewDecoder(io.LimitReader(r.Body, maxAdminBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		pipeline.WriteError(w, pipeline.Errorf(http.StatusBadRequest, "the body must be a JSON object with one of session_id, subject, rule (and an optional reason): %v", err), false)
		return
	}
	set := 0
	for _, v := range []string{req.SessionID, req.Subject, req.Rule} {
		if v != "" {
			set++
		}
	}
	if set != 1 {
		pipeline.WriteError(w, pipeline.Errorf(http.StatusBadRequest, "exactly one of session_id, subject and rule must be set"), false)
		return
	}
	n := a.revoker.Revoke(Revocation{
		SessionID: req.SessionID, Subject: req.Subject, Rule: req.Rule,
		Reason: req.Reason, Source: SourceAdmin, Until: a.sessionEnd(req.SessionID),
	})
	writeJSON(w, http.StatusOK, map[string]int{"closed": n})
}
