package authenticators

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/portcullis-proxy/portcullis/internal/fetch"
	"github.com/portcullis-proxy/portcullis/internal/jwks"
	"github.com/portcullis-proxy/portcullis/pipeline"
)

// jwtLeeway is the clock skew allowed on exp, nbf and iat.
const jwtLeeway = 10 * time.Second

// JWTConfig configures the `jwt` authenticator (Oathkeeper's keys).
type JWTConfig struct {
	// JWKSURLs lists the key sets that may have signed a token: file://,
	// http(s):// or inline:// JWKS documents. Required.
	JWKSURLs []string `json:"jwks_urls"`
	// RequiredScope lists scopes the token must grant (claim scp, scope or
	// scopes), compared per ScopeStrategy.
	RequiredScope []string `json:"required_scope,omitempty"`
	// TargetAudience lists audiences that must all be in the token's aud.
	TargetAudience []string `json:"target_audience,omitempty"`
	// TrustedIssuers, when set, lists the only accepted iss values.
	TrustedIssuers []string `json:"trusted_issuers,omitempty"`
	// AllowedAlgorithms lists accepted signature algorithms. Default
	// ["RS256"]. The HMAC family (HS256, HS384, HS512, verified with the
	// shared secrets of the key sets) is accepted only when listed here,
	// as in Oathkeeper; "none" is refused at load.
	AllowedAlgorithms []string `json:"allowed_algorithms,omitempty"`
	// ScopeStrategy is exact, hierarchic, wildcard or none; default exact
	// when required_scope is set. "none" with required_scope cannot check
	// the scopes: as in Oathkeeper, every token is then rejected (401).
	ScopeStrategy string `json:"scope_strategy,omitempty"`
	// TokenFrom says where the token is; default the Authorization
	// header's Bearer value.
	TokenFrom *TokenLocation `json:"token_from,omitempty"`
	// JWKSTTL is how long fetched key sets are used before they are
	// fetched again. Default 5m. Global only.
	JWKSTTL pipeline.Duration `json:"jwks_ttl,omitempty"`
	// JWKSMaxWait bounds one key set fetch. Default 5s. Global only.
	JWKSMaxWait pipeline.Duration `json:"jwks_max_wait,omitempty"`
}

// SetDefaults sets allowed_algorithms [RS256], jwks_ttl 5m and
// jwks_max_wait 5s.
func (c *JWTConfig) SetDefaults() {
	c.AllowedAlgorithms = []string{"RS256"}
	c.JWKSTTL = pipeline.Duration(jwks.DefaultTTL)
	c.JWKSMaxWait = pipeline.Duration(jwks.DefaultFetchTimeout)
}

// Validate checks the key set locations, algorithms, scope strategy and
// token_from.
func (c *JWTConfig) Validate() error {
	if len(c.JWKSURLs) == 0 {
		return errors.New(`key "jwks_urls": at least one key set is required`)
	}
	for _, u := range c.JWKSURLs {
		if err := fetch.CheckURL(u); err != nil {
			return fmt.Errorf(`key "jwks_urls": %w`, err)
		}
	}
	if _, err := verificationAlgorithms(c.AllowedAlgorithms); err != nil {
		return err
	}
	if err := validScopeStrategy(c.ScopeStrategy); err != nil {
		return err
	}
	if c.TokenFrom != nil {
		return c.TokenFrom.Validate()
	}
	return nil
}

// signatureAlgorithms are the algorithms allowed_algorithms may list.
// The HMAC ones verify with a shared secret (a kty "oct" key of the key
// set): anyone holding the key set can mint tokens, so they are never a
// default.
var signatureAlgorithms = map[string]jose.SignatureAlgorithm{
	"RS256": jose.RS256, "RS384": jose.RS384, "RS512": jose.RS512,
	"PS256": jose.PS256, "PS384": jose.PS384, "PS512": jose.PS512,
	"ES256": jose.ES256, "ES384": jose.ES384, "ES512": jose.ES512,
	"EdDSA": jose.EdDSA,
	"HS256": jose.HS256, "HS384": jose.HS384, "HS512": jose.HS512,
}

func verificationAlgorithms(names []string) ([]jose.SignatureAlgorithm, error) {
	if len(names) == 0 {
		return nil, errors.New(`key "allowed_algorithms": at least one algorithm is required`)
	}
	out := make([]jose.SignatureAlgorithm, 0, len(names))
	for _, n := range names {
		a, ok := signatureAlgorithms[n]
		if !ok {
			return nil, fmt.Errorf(`key "allowed_algorithms": %q is not accepted (use RS*, PS*, ES*, EdDSA or HS*; "none" is refused)`, n)
		}
		out = append(out, a)
	}
	return out, nil
}

// NewJWT makes the `jwt` authenticator's rule builder from its global
// config. Key sets are cached once per process and shared by every rule
// that names them.
//
// A request without a token in the configured place, or whose token is not
// shaped like a JWT (three dot-separated parts), is not this handler's
// (the next authenticator is tried). A JWT is accepted when its header
// names an allowed algorithm, its signature verifies with a key of the key
// sets (found by kid, which the token must carry, as in Oathkeeper; a kid
// not yet known refreshes the sets, at most once per 5s per set), exp and
// nbf hold (10s leeway), and the issuer, audience and scope checks pass;
// otherwise the request is rejected with 401. Key sets that cannot be read at all give 503.
//
// The session's subject is the sub claim, Extra holds all claims, and
// ExpiresAt is exp, so a WebSocket opened with the token closes when it
// expires. The session's Revalidator re-reads the key sets (rate limited)
// and verifies the token again, so a key withdrawn from the set ends
// long-lived connections admitted with it. A token without exp never
// expires (as in Oathkeeper); issuers should always set exp.
func NewJWT(g *JWTConfig, deps pipeline.Deps) (pipeline.RuleBuilder[JWTConfig, pipeline.Authenticator], error) {
	client, err := deps.Client()
	if err != nil {
		return nil, err
	}
	return &jwtBuilder{
		ttl:  g.JWKSTTL,
		wait: g.JWKSMaxWait,
		keys: &jwks.Registry{
			Client:       client,
			TTL:          g.JWKSTTL.D(),
			FetchTimeout: g.JWKSMaxWait.D(),
		},
		now: time.Now,
	}, nil
}

type jwtBuilder struct {
	ttl, wait pipeline.Duration
	keys      *jwks.Registry
	now       func() time.Time
}

func (b *jwtBuilder) Build(c *JWTConfig) (pipeline.Authenticator, error) {
	if c.JWKSTTL != b.ttl || c.JWKSMaxWait != b.wait {
		return nil, errors.New(`keys "jwks_ttl" and "jwks_max_wait" are set once, in the global config (authenticators.jwt.config), not per rule`)
	}
	algs, _ := verificationAlgorithms(c.AllowedAlgorithms)
	strategy, _ := resolveScopeStrategy(c.ScopeStrategy, c.RequiredScope)
	a := &jwtAuthenticator{
		uncheckable: c.ScopeStrategy == "none" && len(c.RequiredScope) > 0,
		algs:        algs,
		from:        c.TokenFrom,
		issuers:     c.TrustedIssuers,
		audience:    c.TargetAudience,
		required:    c.RequiredScope,
		strategy:    strategy,
		now:         b.now,
	}
	for _, u := range c.JWKSURLs {
		a.sources = append(a.sources, b.keys.Source(u))
	}
	return a, nil
}

type jwtAuthenticator struct {
	// uncheckable is required_scope with scope_strategy none.
	uncheckable bool
	sources     []*jwks.Source
	algs        []jose.SignatureAlgorithm
	from        *TokenLocation
	issuers     []string
	audience    []string
	required    []string
	strategy    scopeStrategy
	now         func() time.Time
}

var (
	_ pipeline.Authenticator = (*jwtAuthenticator)(nil)
	_ pipeline.CarrierReader = (*jwtAuthenticator)(nil)
)

// Carriers names the query parameter the token is read from, if any.
func (a *jwtAuthenticator) Carriers() pipeline.Scrub { return a.from.Carriers() }

func (a *jwtAuthenticator) Authenticate(r *http.Request, s *pipeline.Session) error {
	token := a.from.Extract(r)
	a.from.Taken(s, token) // before any check
	if token == "" || strings.Count(token, ".") != 2 {
		return pipeline.ErrNotResponsible
	}
	id, err := a.identity(r.Context(), token, false)
	if err != nil {
		return err
	}
	s.Subject, s.Extra, s.ExpiresAt = id.Subject, id.Extra, id.ExpiresAt
	s.Authenticator = "jwt"
	s.CredentialID = pipeline.CredentialID(token)
	// The session a revocation (OpenID Connect back-channel logout, the
	// admin API) names: the OP's session id, else the token's own id.
	if sid, _ := id.Extra["sid"].(string); sid != "" {
		s.SessionID = sid
	} else if jti, _ := id.Extra["jti"].(string); jti != "" {
		s.SessionID = jti
	}
	s.Revalidator = pipeline.RevalidatorFunc(func(ctx context.Context) (pipeline.Identity, error) {
		return a.identity(ctx, token, true)
	})
	return nil
}

// identity verifies the token and reads the session from its claims: the
// subject (required) and the claims as the extra. refresh re-reads the key
// sets first, for revalidation.
func (a *jwtAuthenticator) identity(ctx context.Context, token string, refresh bool) (pipeline.Identity, error) {
	claims, exp, err := a.verify(ctx, token, refresh)
	if err != nil {
		return pipeline.Identity{}, err
	}
	sub, _ := claims["sub"].(string)
	if strings.TrimSpace(sub) == "" {
		// As for sessions: an identity without a subject is no identity,
		// and would reach the upstream as an empty X-User.
		return pipeline.Identity{}, pipeline.Unauthorized("invalid token", errors.New("token has no subject"))
	}
	// As in Oathkeeper, the granted scopes are always .Extra.scp, a list
	// (empty without scopes), whichever claim carried them (scp, scope as
	// a space-separated string, or scopes); that claim is replaced.
	scopes := scopesFromClaims(claims)
	if scopes == nil {
		scopes = []string{}
	}
	for _, k := range []string{"scp", "scope", "scopes"} {
		if _, ok := claims[k]; ok {
			delete(claims, k)
			break
		}
	}
	claims["scp"] = scopes
	return pipeline.Identity{Subject: sub, Extra: claims, ExpiresAt: exp}, nil
}

// verify checks the token and returns its claims and expiry. refresh
// re-reads the key sets first (rate limited), for revalidation.
func (a *jwtAuthenticator) verify(ctx context.Context, token string, refresh bool) (map[string]any, time.Time, error) {
	parsed, err := jwt.ParseSigned(token, a.algs)
	if err != nil {
		// Covers malformed tokens and every algorithm not allowed,
		// "none" and HMAC included.
		return nil, time.Time{}, pipeline.Unauthorized("invalid token", errors.New("token is malformed or uses an algorithm that is not allowed"))
	}
	if len(parsed.Headers) != 1 {
		return nil, time.Time{}, pipeline.Unauthorized("invalid token", errors.New("token must carry exactly one signature"))
	}
	h := parsed.Headers[0]
	if h.KeyID == "" {
		// As in Oathkeeper: the key is chosen by kid, never by trying.
		return nil, time.Time{}, pipeline.Unauthorized("invalid token", errors.New("token has no kid header"))
	}
	alg := jose.SignatureAlgorithm(h.Algorithm)
	if refresh {
		for _, src := range a.sources {
			_, _ = src.Refresh(ctx) // a failure keeps the last good set
		}
	}
	keys, err := jwks.Candidates(ctx, a.sources, h.KeyID, alg)
	if len(keys) == 0 {
		if err != nil {
			return nil, time.Time{}, pipeline.Unavailable("token signing keys unavailable", err)
		}
		return nil, time.Time{}, pipeline.Unauthorized("invalid token", fmt.Errorf("no key with kid %q for %s", h.KeyID, alg))
	}
	var std jwt.Claims
	var all map[string]any
	verified := false
	for _, k := range keys {
		if err := parsed.Claims(jwks.VerificationKey(k), &std, &all); err == nil {
			verified = true
			break
		}
	}
	if !verified {
		return nil, time.Time{}, pipeline.Unauthorized("invalid token", errors.New("signature does not verify"))
	}
	if err := std.ValidateWithLeeway(jwt.Expected{Time: a.now()}, jwtLeeway); err != nil {
		return nil, time.Time{}, pipeline.Unauthorized("invalid token", err)
	}
	if err := checkIssuer(std.Issuer, a.issuers); err != nil {
		return nil, time.Time{}, pipeline.Unauthorized("invalid token", err)
	}
	if err := checkAudience(std.Audience, a.audience); err != nil {
		return nil, time.Time{}, pipeline.Unauthorized("invalid token", err)
	}
	if a.uncheckable {
		return nil, time.Time{}, pipeline.Unauthorized("insufficient scope", errors.New(`required_scope is set but scope_strategy is "none"`))
	}
	if err := checkScopes(a.strategy, scopesFromClaims(all), a.required); err != nil {
		return nil, time.Time{}, pipeline.Unauthorized("insufficient scope", err)
	}
	var exp time.Time
	if std.Expiry != nil {
		exp = std.Expiry.Time()
	}
	return all, exp, nil
}
