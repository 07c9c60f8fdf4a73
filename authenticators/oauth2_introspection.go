package authenticators

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/portcullis-proxy/portcullis/internal/fetch"
	"github.com/portcullis-proxy/portcullis/internal/ttlcache"
	"github.com/portcullis-proxy/portcullis/pipeline"
)

// OAuth2IntrospectionConfig configures the `oauth2_introspection`
// authenticator (Oathkeeper's keys, plus timeout).
type OAuth2IntrospectionConfig struct {
	// IntrospectionURL is the RFC 7662 endpoint. Required.
	IntrospectionURL string `json:"introspection_url"`
	// RequiredScope lists scopes the token must grant (see
	// ScopeStrategy).
	RequiredScope []string `json:"required_scope,omitempty"`
	// ScopeStrategy is exact, hierarchic, wildcard or none (the default),
	// as in Oathkeeper: with a strategy, required_scope is checked here
	// against the answer's scope (a miss is a 403); with none, it is sent
	// as the introspection request's scope parameter and the endpoint
	// decides.
	ScopeStrategy string `json:"scope_strategy,omitempty"`
	// PreserveHost sends the request's Host to the endpoint as
	// X-Forwarded-Host.
	PreserveHost bool `json:"preserve_host,omitempty"`
	// TargetAudience lists audiences that must all be in the answer's aud.
	TargetAudience []string `json:"target_audience,omitempty"`
	// TrustedIssuers, when set, lists the only accepted iss values.
	TrustedIssuers []string `json:"trusted_issuers,omitempty"`
	// PreAuthorization authenticates portcullis to the introspection
	// endpoint with an OAuth 2.0 client credentials token.
	PreAuthorization *IntrospectionPreAuthorization `json:"pre_authorization,omitempty"`
	// IntrospectionRequestHeaders are added to the introspection request.
	IntrospectionRequestHeaders map[string]string `json:"introspection_request_headers,omitempty"`
	// TokenFrom says where the token is; default the Authorization
	// header's Bearer value.
	TokenFrom *TokenLocation `json:"token_from,omitempty"`
	// Prefix, when set, makes the handler responsible only for tokens
	// starting with it.
	Prefix string `json:"prefix,omitempty"`
	// Retry, when present, retries transport failures and 502/503/504.
	Retry *fetch.Retry `json:"retry,omitempty"`
	// Timeout bounds one introspection attempt. Default 2s.
	Timeout pipeline.Duration `json:"timeout,omitempty"`
	// Cache reuses positive answers.
	Cache IntrospectionCacheConfig `json:"cache"`
}

// IntrospectionPreAuthorization is the client credentials grant used to
// call the introspection endpoint.
type IntrospectionPreAuthorization struct {
	Enabled      bool     `json:"enabled"`
	ClientID     string   `json:"client_id"`
	ClientSecret string   `json:"client_secret"`
	TokenURL     string   `json:"token_url"`
	Scope        []string `json:"scope,omitempty"`
	Audience     string   `json:"audience,omitempty"`
}

// IntrospectionCacheConfig bounds the answer cache.
type IntrospectionCacheConfig struct {
	// Enabled turns the cache on. Default off.
	Enabled bool `json:"enabled"`
	// TTL is the longest an answer is reused; never past the token's exp.
	// Default 30s: a token revoked at the authorization server stays
	// accepted here for at most this long.
	TTL pipeline.Duration `json:"ttl"`
	// MaxCost is the most tokens kept. Default 10000. Global only.
	MaxCost int `json:"max_cost"`
}

// SetDefaults sets timeout 2s, cache.ttl 30s and cache.max_cost 10000.
func (c *OAuth2IntrospectionConfig) SetDefaults() {
	c.Timeout = pipeline.Duration(2 * time.Second)
	c.Cache.TTL = pipeline.Duration(30 * time.Second)
	c.Cache.MaxCost = 10000
}

// Validate checks the URLs, scope strategy, token_from and client
// credentials.
func (c *OAuth2IntrospectionConfig) Validate() error {
	if err := httpURL("introspection_url", c.IntrospectionURL); err != nil {
		return err
	}
	if err := validScopeStrategy(c.ScopeStrategy); err != nil {
		return err
	}
	if c.TokenFrom != nil {
		if err := c.TokenFrom.Validate(); err != nil {
			return err
		}
	}
	if c.Timeout <= 0 {
		return errors.New(`key "timeout": must be positive`)
	}
	if c.Cache.Enabled && c.Cache.TTL <= 0 {
		return errors.New(`key "cache.ttl": must be positive`)
	}
	if p := c.PreAuthorization; p != nil && p.Enabled {
		if p.ClientID == "" || p.ClientSecret == "" {
			return errors.New(`key "pre_authorization": client_id and client_secret are required`)
		}
		if err := httpURL("pre_authorization.token_url", p.TokenURL); err != nil {
			return err
		}
	}
	return nil
}

func httpURL(key, raw string) error {
	u, err := url.Parse(raw)
	switch {
	case raw == "":
		return pipeline.Required(key)
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		return fmt.Errorf("key %q: %q is not an http(s) URL", key, fetch.Redact(raw))
	}
	return nil
}

// NewOAuth2Introspection makes the `oauth2_introspection` authenticator's
// rule builder from its global config: tokens are checked with an RFC 7662 introspection endpoint.
//
// A request without a token (or without the prefix) is not this
// handler's. A token the endpoint reports inactive, expired, not yet
// valid, not an access token, from an untrusted issuer, for another
// audience or without the required scope is rejected with 401. An endpoint
// that cannot be reached, times out or answers 5xx — or a client
// credentials token that cannot be obtained — gives 503: the request is
// denied, never let through.
//
// The session's subject is the answer's sub; Extra is its ext object plus
// username, client_id, scope and aud (Oathkeeper's shape); ExpiresAt is its
// exp. The Revalidator introspects again, bypassing the cache, so a token
// revoked at the authorization server ends long-lived connections at the
// next revalidation.
//
// With cache.enabled, positive answers are kept (keyed by a hash of the
// rule's whole effective configuration and the token — the token itself
// is not stored as a key) for cache.ttl, never past the token's exp.
func NewOAuth2Introspection(g *OAuth2IntrospectionConfig, deps pipeline.Deps) (pipeline.RuleBuilder[OAuth2IntrospectionConfig, pipeline.Authenticator], error) {
	if g.Cache.MaxCost < 1 {
		return nil, errors.New(`key "cache.max_cost": must be at least 1`)
	}
	client, err := deps.Client()
	if err != nil {
		return nil, err
	}
	return &introspectionBuilder{
		maxCost:      g.Cache.MaxCost,
		client:       client,
		answers:      ttlcache.New[[32]byte, *introspectionAnswer](g.Cache.MaxCost),
		clientTokens: ttlcache.New[[32]byte, string](256),
		now:          time.Now,
	}, nil
}

type introspectionBuilder struct {
	maxCost      int
	client       *http.Client
	answers      *ttlcache.Cache[[32]byte, *introspectionAnswer]
	clientTokens *ttlcache.Cache[[32]byte, string]
	grants       singleflight.Group
	now          func() time.Time
}

func (b *introspectionBuilder) Build(c *OAuth2IntrospectionConfig) (pipeline.Authenticator, error) {
	if c.Cache.MaxCost != b.maxCost {
		return nil, errors.New(`key "cache.max_cost" is set once, in the global config (authenticators.oauth2_introspection.config), not per rule`)
	}
	// "" and "none" are no local check (Oathkeeper's nil strategy).
	strategy, _ := scopeStrategyNamed(c.ScopeStrategy)
	cfgHash, err := pipeline.ConfigHash(c)
	if err != nil {
		return nil, err
	}
	a := &introspection{
		b:            b,
		cfgHash:      cfgHash,
		preserveHost: c.PreserveHost,
		url:          c.IntrospectionURL,
		from:         c.TokenFrom,
		prefix:       c.Prefix,
		required:     c.RequiredScope,
		strategy:     strategy,
		audience:     c.TargetAudience,
		issuers:      c.TrustedIssuers,
		caller:       &fetch.Caller{Client: b.client, Timeout: c.Timeout.D(), Retry: c.Retry},
		cache:        c.Cache.Enabled,
		ttl:          c.Cache.TTL.D(),
		headers:      http.Header{},
	}
	for k, v := range c.IntrospectionRequestHeaders {
		a.headers.Set(k, v)
	}
	if p := c.PreAuthorization; p != nil && p.Enabled {
		a.pre = p
	}
	return a, nil
}

type introspection struct {
	b *introspectionBuilder
	// cfgHash is the hash of the rule's effective configuration: the
	// answer cache is shared by all rules, and what one rule's
	// introspection (its endpoint, headers, pre_authorization, scope)
	// answered must never admit a request on another.
	cfgHash      [32]byte
	preserveHost bool
	url          string
	from         *TokenLocation
	prefix       string
	required     []string
	strategy     scopeStrategy
	audience     []string
	issuers      []string
	caller       *fetch.Caller
	cache        bool
	ttl          time.Duration
	headers      http.Header
	pre          *IntrospectionPreAuthorization
}

var (
	_ pipeline.Authenticator = (*introspection)(nil)
	_ pipeline.CarrierReader = (*introspection)(nil)
)

// Carriers names the query parameter the token is read from, if any.
func (a *introspection) Carriers() pipeline.Scrub { return a.from.Carriers() }

// introspectionAnswer is an RFC 7662 response.
type introspectionAnswer struct {
	Active    bool           `json:"active"`
	Scope     string         `json:"scope"`
	ClientID  string         `json:"client_id"`
	Subject   string         `json:"sub"`
	Expiry    int64          `json:"exp"`
	IssuedAt  int64          `json:"iat"`
	NotBefore int64          `json:"nbf"`
	Audience  any            `json:"aud"`
	Issuer    string         `json:"iss"`
	TokenType string         `json:"token_type"`
	TokenUse  string         `json:"token_use"`
	Username  string         `json:"username"`
	Ext       map[string]any `json:"ext"`
	// SessionID is the authorization server's session id, when it says
	// (RFC 7662 allows extension members; Hydra and others send sid).
	SessionID string `json:"sid"`
}

func (a *introspection) Authenticate(r *http.Request, s *pipeline.Session) error {
	token := a.from.Extract(r)
	a.from.Taken(s, token) // before any check
	if token == "" || !strings.HasPrefix(token, a.prefix) {
		return pipeline.ErrNotResponsible
	}
	host := ""
	if a.preserveHost {
		host = r.Host
	}
	ans, err := a.answer(r.Context(), token, host, !a.cache)
	if err != nil {
		return err
	}
	if err := a.check(ans); err != nil {
		return err
	}
	s.Subject = ans.Subject
	s.Extra = ans.extra()
	s.ExpiresAt = ans.expiry()
	s.SessionID = ans.SessionID
	s.Authenticator = "oauth2_introspection"
	s.CredentialID = pipeline.CredentialID(token)
	subject := ans.Subject
	s.Revalidator = pipeline.RevalidatorFunc(func(ctx context.Context) (pipeline.Identity, error) {
		ans, err := a.answer(ctx, token, host, true)
		if err != nil {
			return pipeline.Identity{}, err
		}
		if err := a.check(ans); err != nil {
			return pipeline.Identity{}, err
		}
		if ans.Subject != subject {
			return pipeline.Identity{}, pipeline.Unauthorized("token now belongs to another subject", nil)
		}
		return pipeline.Identity{Subject: ans.Subject, Extra: ans.extra(), ExpiresAt: ans.expiry()}, nil
	})
	return nil
}

func (ans *introspectionAnswer) expiry() time.Time {
	if ans.Expiry == 0 {
		return time.Time{}
	}
	return time.Unix(ans.Expiry, 0)
}

// extra returns a fresh map each time: cached answers are shared.
func (ans *introspectionAnswer) extra() map[string]any {
	out := make(map[string]any, len(ans.Ext)+4)
	for k, v := range ans.Ext {
		out[k] = v
	}
	out["username"] = ans.Username
	out["client_id"] = ans.ClientID
	out["scope"] = ans.Scope
	if aud := claimStrings(ans.Audience, false); len(aud) > 0 {
		out["aud"] = aud
	}
	return out
}

// answer returns the introspection result, from the cache unless fresh.
// host, when set, is sent as X-Forwarded-Host (preserve_host).
func (a *introspection) answer(ctx context.Context, token, host string, fresh bool) (*introspectionAnswer, error) {
	h := sha256.New()
	h.Write(a.cfgHash[:]) // fixed length: no two inputs share an encoding
	// The Host forwarded with preserve_host is part of what the endpoint
	// is told (a Host never holds a NUL).
	h.Write([]byte(host))
	h.Write([]byte{0})
	h.Write([]byte(token))
	var key [32]byte
	h.Sum(key[:0])
	if !fresh {
		if ans, ok := a.b.answers.Get(key); ok {
			return ans, nil
		}
	}
	ans, err := a.introspect(ctx, token, host, false)
	if err != nil {
		return nil, err
	}
	if a.cache && ans.Active {
		until := a.b.now().Add(a.ttl)
		if exp := ans.expiry(); !exp.IsZero() && exp.Before(until) {
			until = exp
		}
		a.b.answers.Set(key, ans, until)
	}
	return ans, nil
}

func (a *introspection) introspect(ctx context.Context, token, host string, retriedAuth bool) (*introspectionAnswer, error) {
	form := url.Values{"token": {token}}
	if a.strategy == nil && len(a.required) > 0 {
		// No local strategy: the endpoint is asked to check the scope.
		form.Set("scope", strings.Join(a.required, " "))
	}
	body := form.Encode()
	header := a.headers.Clone()
	header.Set("Content-Type", "application/x-www-form-urlencoded")
	header.Set("Accept", "application/json")
	if host != "" {
		header.Set("X-Forwarded-Host", host)
	}
	if a.pre != nil {
		ct, err := a.clientToken(ctx)
		if err != nil {
			return nil, err
		}
		header.Set("Authorization", "Bearer "+ct)
	}
	res, err := a.caller.Post(ctx, a.url, header, []byte(body))
	if err != nil {
		return nil, pipeline.Unavailable("token introspection unavailable", err)
	}
	switch {
	case res.StatusCode == http.StatusOK:
	case res.StatusCode == http.StatusUnauthorized && a.pre != nil && !retriedAuth:
		// The client credentials token may have been revoked or expired
		// early: get a new one, once.
		a.b.clientTokens.Delete(a.clientTokenKey())
		return a.introspect(ctx, token, host, true)
	case res.StatusCode >= 500:
		return nil, pipeline.Unavailable("token introspection unavailable", fmt.Errorf("status %d", res.StatusCode))
	default:
		return nil, pipeline.NewError(http.StatusInternalServerError, "token introspection failed", fmt.Errorf("introspection endpoint answered status %d", res.StatusCode))
	}
	var ans introspectionAnswer
	if err := json.Unmarshal(res.Body, &ans); err != nil {
		return nil, pipeline.NewError(http.StatusInternalServerError, "token introspection failed", errors.New("introspection answer is not JSON"))
	}
	return &ans, nil
}

// check applies the rule's requirements to an answer.
func (a *introspection) check(ans *introspectionAnswer) error {
	now := a.b.now()
	switch {
	case !ans.Active:
		return pipeline.Unauthorized("invalid token", errors.New("token is not active"))
	case ans.TokenUse != "" && ans.TokenUse != "access_token":
		// An active token that is not an access token: as in
		// Oathkeeper, a 403 (the checks below too).
		return pipeline.Forbidden("token not accepted", fmt.Errorf("token use %q is not access_token", ans.TokenUse))
	case ans.Expiry != 0 && !now.Before(time.Unix(ans.Expiry, 0)):
		return pipeline.Unauthorized("invalid token", errors.New("token expired"))
	case ans.NotBefore != 0 && now.Add(jwtLeeway).Before(time.Unix(ans.NotBefore, 0)):
		return pipeline.Unauthorized("invalid token", errors.New("token not valid yet"))
	}
	if err := checkIssuer(ans.Issuer, a.issuers); err != nil {
		return pipeline.Forbidden("token not accepted", err)
	}
	if err := checkAudience(claimStrings(ans.Audience, false), a.audience); err != nil {
		return pipeline.Forbidden("token not accepted", err)
	}
	if a.strategy != nil {
		if err := checkScopes(a.strategy, strings.Fields(ans.Scope), a.required); err != nil {
			return pipeline.Forbidden("insufficient scope", err)
		}
	}
	return nil
}

func (a *introspection) clientTokenKey() [32]byte {
	p := a.pre
	return sha256.Sum256([]byte(strings.Join([]string{p.TokenURL, p.ClientID, p.ClientSecret, strings.Join(p.Scope, " "), p.Audience}, "\x00")))
}

// clientToken returns a cached client credentials access token, fetching
// a new one (once for all concurrent callers) when none is held.
func (a *introspection) clientToken(ctx context.Context) (string, error) {
	key := a.clientTokenKey()
	if t, ok := a.b.clientTokens.Get(key); ok {
		return t, nil
	}
	v, err, _ := a.b.grants.Do(string(key[:]), func() (any, error) {
		return a.fetchClientToken(ctx, key)
	})
	if err != nil {
		return "", err
	}
	return v.(string), nil
}

func (a *introspection) fetchClientToken(ctx context.Context, key [32]byte) (string, error) {
	p := a.pre
	form := url.Values{"grant_type": {"client_credentials"}}
	if len(p.Scope) > 0 {
		form.Set("scope", strings.Join(p.Scope, " "))
	}
	if p.Audience != "" {
		form.Set("audience", p.Audience)
	}
	header := http.Header{
		"Content-Type": {"application/x-www-form-urlencoded"},
		"Accept":       {"application/json"},
		// RFC 6749 §2.3.1: the credentials are form-encoded before they
		// are used as basic auth user and password.
		"Authorization": {fetch.BasicAuth(url.QueryEscape(p.ClientID), url.QueryEscape(p.ClientSecret))},
	}
	res, err := a.caller.Post(ctx, p.TokenURL, header, []byte(form.Encode()))
	if err != nil {
		return "", pipeline.Unavailable("token introspection unavailable", fmt.Errorf("client credentials: %w", err))
	}
	if res.StatusCode != http.StatusOK {
		return "", pipeline.Unavailable("token introspection unavailable", fmt.Errorf("client credentials: token endpoint answered status %d", res.StatusCode))
	}
	var tok struct {
		AccessToken string `json:"access_token"`
		ExpiresIn   int64  `json:"expires_in"`
	}
	if err := json.Unmarshal(res.Body, &tok); err != nil || tok.AccessToken == "" {
		return "", pipeline.Unavailable("token introspection unavailable", errors.New("client credentials: token endpoint answer has no access_token"))
	}
	life := time.Duration(tok.ExpiresIn) * time.Second
	if life <= 0 {
		life = 5 * time.Minute
	}
	// Renew a little early so a token never expires in flight.
	a.b.clientTokens.Set(key, tok.AccessToken, a.b.now().Add(life-min(life/10, 30*time.Second)))
	return tok.AccessToken, nil
}
