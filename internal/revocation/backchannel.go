package revocation

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/sirupsen/logrus"

	"github.com/portcullis-proxy/portcullis/internal/fetch"
	"github.com/portcullis-proxy/portcullis/internal/jwks"
)

// BackchannelEvent is the member of a logout token's events claim that
// makes it one (OpenID Connect Back-Channel Logout 1.0, section 2.4).
const BackchannelEvent = "http://schemas.openid.net/event/backchannel-logout"

// BackchannelOptions configure [NewBackchannel].
type BackchannelOptions struct {
	// Issuer is the OpenID Provider's issuer; the token's iss must equal
	// it. Required.
	Issuer string
	// Audience lists the client ids this deployment is known by at the
	// OP; the token's aud must contain one of them. Required.
	Audience []string
	// JWKSURLs are the OP's key sets (file://, http(s)://); the token's
	// signature must verify with one of their keys. Required.
	JWKSURLs []string
	// MaxAge bounds how old a token's iat may be (default 5m); tokens
	// issued more than a minute in the future are refused too.
	MaxAge time.Duration
	// Revoker applies the revocation; required.
	Revoker interface{ Revoke(Event) int }
	// Log receives one line per refused token (never the token); nil
	// discards.
	Log logrus.FieldLogger
	// Client reads the key sets: the process's client for outbound calls
	// (http_client). Nil: [fetch.NewClient] with its defaults.
	Client *http.Client
}

// Backchannel serves an OpenID Connect Back-Channel Logout endpoint: a
// POST of a form-encoded logout_token, which is verified — signed with a
// key of the configured sets (never "none" nor HMAC), iss, aud, iat within
// MaxAge, exp not passed, the back-channel-logout events member, sid
// and/or sub, no nonce, a jti not seen before — and revokes the session
// (sid) or, without one, every session of the subject (sub). It answers
// 200, or 400 with {"error": "invalid_request", "error_description": …}
// (section 2.8), always with Cache-Control: no-store.
type Backchannel struct {
	o       BackchannelOptions
	sources []*jwks.Source
	log     logrus.FieldLogger
	now     func() time.Time

	mu   sync.Mutex
	seen map[string]time.Time // "iss\x00jti" → when it can be forgotten
}

// maxSeenJTIs bounds the replay memory; a token older than MaxAge is
// refused anyway, so entries are kept only that long.
const maxSeenJTIs = 100000

// clockLeeway is how far in the future an iat, and how far in the past an
// exp, may be.
const clockLeeway = time.Minute

// NewBackchannel returns the endpoint's handler.
func NewBackchannel(o BackchannelOptions) (*Backchannel, error) {
	switch {
	case o.Issuer == "":
		return nil, errors.New("issuer: required")
	case len(o.Audience) == 0:
		return nil, errors.New("audience: required")
	case len(o.JWKSURLs) == 0:
		return nil, errors.New("jwks_urls: required")
	case o.Revoker == nil:
		return nil, errors.New("a revoker is required")
	}
	if o.MaxAge <= 0 {
		o.MaxAge = 5 * time.Minute
	}
	if o.Client == nil {
		o.Client = fetch.NewClient(fetch.ClientOptions{})
	}
	reg := &jwks.Registry{Client: o.Client, TTL: 5 * time.Minute, FetchTimeout: 5 * time.Second}
	b := &Backchannel{o: o, log: o.Log, now: time.Now, seen: map[string]time.Time{}}
	for _, u := range o.JWKSURLs {
		b.sources = append(b.sources, reg.Source(u))
	}
	if b.log == nil {
		l := logrus.New()
		l.Out = io.Discard
		b.log = l
	}
	return b, nil
}

// logoutClaims are the logout token's claims beyond the registered ones.
type logoutClaims struct {
	SID    string                     `json:"sid"`
	Events map[string]json.RawMessage `json:"events"`
	Nonce  *json.RawMessage           `json:"nonce"`
}

// ServeHTTP implements http.Handler.
func (b *Backchannel) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeLogoutError(w, http.StatusMethodNotAllowed, "the logout token must be POSTed")
		return
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/x-www-form-urlencoded" {
		writeLogoutError(w, http.StatusBadRequest, "the body must be application/x-www-form-urlencoded")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		writeLogoutError(w, http.StatusBadRequest, "the body is not a valid form")
		return
	}
	token := r.PostForm.Get("logout_token")
	if token == "" {
		writeLogoutError(w, http.StatusBadRequest, "logout_token is missing")
		return
	}
	e, err := b.verify(r.Context(), token)
	if err != nil {
		b.log.WithField("error", err.Error()).Info("back-channel logout token refused")
		writeLogoutError(w, http.StatusBadRequest, err.Error())
		return
	}
	n := b.o.Revoker.Revoke(e)
	b.log.WithFields(logrus.Fields{"session_id": e.SessionID, "subject": e.Subject, "closed": n}).Info("back-channel logout")
	w.WriteHeader(http.StatusOK)
}

// writeLogoutError writes the error response of section 2.8.
func writeLogoutError(w http.ResponseWriter, status int, desc string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": "invalid_request", "error_description": desc})
}

// logoutAlgorithms are the signature algorithms a logout token may use:
// asymmetric only, as for the jwt authenticator ("none" and HMAC, whose key
// would be public, never).
var logoutAlgorithms = []jose.SignatureAlgorithm{
	jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512,
	jose.ES256, jose.ES384, jose.ES512, jose.EdDSA,
}

// verify validates token as section 2.6 says and returns the revocation
// it asks for. Errors describe what is wrong, never the token.
func (b *Backchannel) verify(ctx context.Context, token string) (Event, error) {
	parsed, err := jwt.ParseSigned(token, logoutAlgorithms)
	if err != nil {
		return Event{}, errors.New("the logout token is not a signed JWT with an allowed algorithm")
	}
	if len(parsed.Headers) != 1 {
		return Event{}, errors.New("the logout token must carry exactly one signature")
	}
	h := parsed.Headers[0]
	// Explicit typing (section 2.4); tokens of older OPs carry no typ, or
	// the generic JWT.
	if typ, _ := h.ExtraHeaders[jose.HeaderType].(string); typ != "" {
		t := strings.TrimPrefix(strings.ToLower(typ), "application/")
		if t != "logout+jwt" && t != "jwt" {
			return Event{}, fmt.Errorf("the logout token's typ %q is not logout+jwt", typ)
		}
	}
	keys, kerr := jwks.Candidates(ctx, b.sources, h.KeyID, jose.SignatureAlgorithm(h.Algorithm))
	var std jwt.Claims
	var extra logoutClaims
	verified := false
	for _, k := range keys {
		if parsed.Claims(jwks.VerificationKey(k), &std, &extra) == nil {
			verified = true
			break
		}
	}
	if !verified {
		if len(keys) == 0 && kerr != nil {
			return Event{}, errors.New("the OP's signing keys are unavailable")
		}
		return Event{}, errors.New("the logout token's signature does not verify")
	}
	now := b.now()
	switch {
	case std.Issuer != b.o.Issuer:
		return Event{}, errors.New("the logout token's iss is not the configured issuer")
	case !audienceMatches(std.Audience, b.o.Audience):
		return Event{}, errors.New("the logout token's aud does not name this client")
	case std.IssuedAt == nil:
		return Event{}, errors.New("the logout token has no iat")
	case std.IssuedAt.Time().Before(now.Add(-b.o.MaxAge)):
		return Event{}, errors.New("the logout token is too old (iat)")
	case std.IssuedAt.Time().After(now.Add(clockLeeway)):
		return Event{}, errors.New("the logout token is issued in the future (iat)")
	case std.Expiry != nil && std.Expiry.Time().Before(now.Add(-clockLeeway)):
		return Event{}, errors.New("the logout token has expired (exp)")
	case std.ID == "":
		return Event{}, errors.New("the logout token has no jti")
	case extra.Nonce != nil:
		return Event{}, errors.New("the logout token must not contain a nonce")
	case std.Subject == "" && extra.SID == "":
		return Event{}, errors.New("the logout token names neither sid nor sub")
	}
	ev, ok := extra.Events[BackchannelEvent]
	var obj map[string]any
	if !ok || json.Unmarshal(ev, &obj) != nil || obj == nil {
		return Event{}, errors.New("the logout token's events claim lacks the back-channel-logout member")
	}
	if !b.firstUse(std.Issuer, std.ID, now) {
		return Event{}, errors.New("the logout token was already used (jti)")
	}
	e := Event{Source: SourceBackchannel, SessionID: extra.SID}
	if e.SessionID == "" {
		e.Subject = std.Subject
	}
	return e, nil
}

func audienceMatches(aud jwt.Audience, want []string) bool {
	for _, w := range want {
		if aud.Contains(w) {
			return true
		}
	}
	return false
}

// firstUse records jti of iss and reports whether it was not seen within
// MaxAge.
func (b *Backchannel) firstUse(iss, jti string, now time.Time) bool {
	k := iss + "\x00" + jti
	b.mu.Lock()
	defer b.mu.Unlock()
	if until, ok := b.seen[k]; ok && now.Before(until) {
		return false
	}
	if len(b.seen) >= maxSeenJTIs {
		for id, until := range b.seen {
			if !now.Before(until) {
				delete(b.seen, id)
			}
		}
		if len(b.seen) >= maxSeenJTIs {
			// Every remembered token is still young: refusing is safer
			// than forgetting one, and the OP retries later.
			return false
		}
	}
	// Kept a little past MaxAge: by then the iat check refuses a replay.
	b.seen[k] = now.Add(b.o.MaxAge + clockLeeway)
	return true
}
