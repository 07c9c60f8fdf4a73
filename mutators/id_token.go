package mutators

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/portcullis-proxy/portcullis/internal/fetch"
	"github.com/portcullis-proxy/portcullis/internal/jwks"
	"github.com/portcullis-proxy/portcullis/internal/ttlcache"
	"github.com/portcullis-proxy/portcullis/pipeline"
)

// JWKSPath is where portcullis publishes the public keys of the id_token
// mutator on the API listener.
const JWKSPath = "/.well-known/jwks.json"

// IDTokenConfig configures the `id_token` mutator (Oathkeeper's keys plus
// audience).
type IDTokenConfig struct {
	// IssuerURL becomes the token's iss claim. Required.
	IssuerURL string `json:"issuer_url"`
	// JWKSURL locates the signing keys: a JWKS document with private keys
	// at file://, http(s):// or inline://. The first key with a private
	// part signs (RS256/384/512, PS256/384/512, ES256/384/512 or EdDSA,
	// from the key's alg or else its type); its kid goes in the header.
	// Required.
	JWKSURL string `json:"jwks_url"`
	// TTL is the token's lifetime (exp - iat). Default 15m.
	TTL pipeline.Duration `json:"ttl"`
	// Claims is a template rendered with the session that must produce a
	// JSON object of extra claims, e.g.
	// {"email": {{ .Extra.identity.traits.email | toJson }}}. iss, sub,
	// iat, nbf, exp and jti are always set by portcullis and override it.
	Claims string `json:"claims,omitempty"`
	// Audience, when set, becomes the aud claim (overriding one from
	// Claims).
	Audience []string `json:"audience,omitempty"`
}

// SetDefaults sets ttl 15m.
func (c *IDTokenConfig) SetDefaults() { c.TTL = pipeline.Duration(15 * time.Minute) }

// Validate requires issuer_url and jwks_url and a positive ttl.
func (c *IDTokenConfig) Validate() error {
	if c.IssuerURL == "" {
		return pipeline.Required("issuer_url")
	}
	if c.JWKSURL == "" {
		return pipeline.Required("jwks_url")
	}
	if err := fetch.CheckURL(c.JWKSURL); err != nil {
		return fmt.Errorf(`key "jwks_url": %w`, err)
	}
	if c.TTL.D() < time.Second {
		return errors.New(`key "ttl": must be at least 1s`)
	}
	return nil
}

// NewIDToken makes the `id_token` mutator's rule builder from its global
// config. Each request gets a JWT signed with the configured key in the
// upstream's Authorization header ("Bearer <token>"), replacing what the
// client sent there — so the upstream can verify who the gateway admitted against the public keys
// at [JWKSPath] on the API listener (the builder is a
// [pipeline.APIRouter]; only public halves of asymmetric keys are ever
// served).
//
// Signed tokens are cached per (issuer, key set, subject, audience,
// rendered claims) and reused until shortly before they expire (a tenth of
// the ttl, at most a minute), so a busy subject costs one signature per
// ttl rather than one per request. An unreachable key set is a 503.
func NewIDToken(g *IDTokenConfig, deps pipeline.Deps) (pipeline.RuleBuilder[IDTokenConfig, pipeline.Mutator], error) {
	// Key sets are read over the process's connections, following
	// redirects, each read bounded to 10s.
	base, err := deps.Client()
	if err != nil {
		return nil, err
	}
	client := fetch.FollowingRedirects(base)
	client.Timeout = 10 * time.Second
	b := &idTokenBuilder{
		offline: deps.Offline,
		log:     deps.Logger(),
		keys:    &jwks.Registry{Client: client},
		cache:   ttlcache.New[[32]byte, string](10000),
		now:     time.Now,
	}
	if g.JWKSURL != "" {
		if err := fetch.CheckURL(g.JWKSURL); err != nil {
			return nil, fmt.Errorf(`key "jwks_url": %w`, err)
		}
		// Published from the start, even before a rule uses it.
		b.keys.Source(g.JWKSURL)
	}
	return b, nil
}

type idTokenBuilder struct {
	offline bool
	log     *slog.Logger
	keys    *jwks.Registry
	cache   *ttlcache.Cache[[32]byte, string]
	now     func() time.Time
}

var (
	_ pipeline.RuleBuilder[IDTokenConfig, pipeline.Mutator] = (*idTokenBuilder)(nil)
	_ pipeline.APIRouter                                    = (*idTokenBuilder)(nil)
)

func (b *idTokenBuilder) Build(c *IDTokenConfig) (pipeline.Mutator, error) {
	m := &idTokenMutator{
		b:        b,
		issuer:   c.IssuerURL,
		ttl:      c.TTL.D(),
		audience: c.Audience,
		source:   b.keys.Source(c.JWKSURL),
	}
	if strings.TrimSpace(c.Claims) != "" {
		var err error
		if m.claims, err = pipeline.ParseTemplate("claims", c.Claims); err != nil {
			return nil, err
		}
	}
	// A key set that cannot be read, or holds no signing key, is a
	// configuration error when it is local; a remote one may come back, so
	// it is only reported (and not fetched at all when building offline).
	remote := strings.HasPrefix(c.JWKSURL, "http://") || strings.HasPrefix(c.JWKSURL, "https://")
	if remote && b.offline {
		return m, nil
	}
	_, _, kerr := m.signingKey(context.Background())
	if kerr != nil {
		if !remote {
			return nil, fmt.Errorf(`key "jwks_url": %w`, kerr)
		}
		b.log.Warn("id_token signing keys are not available yet; requests fail with 503 until they are", "error", kerr)
	}
	return m, nil
}

// APIRoutes serves the public keys of every key set a rule has used.
func (b *idTokenBuilder) APIRoutes() map[string]http.Handler {
	return map[string]http.Handler{JWKSPath: http.HandlerFunc(b.serveJWKS)}
}

func (b *idTokenBuilder) serveJWKS(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		pipeline.WriteRequestError(w, r, pipeline.NewError(http.StatusMethodNotAllowed, "method "+r.Method+" is not allowed here", nil), false)
		return
	}
	var sets []*jose.JSONWebKeySet
	for _, s := range b.keys.Sources() {
		set, err := s.Keys(r.Context())
		if err != nil {
			b.log.Warn("id_token key set not available for "+JWKSPath, "error", err)
			continue
		}
		sets = append(sets, set)
	}
	w.Header().Set("Cache-Control", "public, max-age=60")
	pipeline.WriteJSON(w, r, http.StatusOK, jwks.Public(sets...))
}

type idTokenMutator struct {
	b        *idTokenBuilder
	issuer   string
	ttl      time.Duration
	audience []string
	claims   *pipeline.Template
	source   *jwks.Source
}

var _ pipeline.Mutator = (*idTokenMutator)(nil)

func (m *idTokenMutator) Mutate(r *http.Request, s *pipeline.Session) error {
	extra := []byte("{}")
	if m.claims != nil {
		out, err := m.claims.Execute(s)
		if err != nil {
			return pipeline.NewError(http.StatusInternalServerError, "id_token mutator failed", fmt.Errorf("claims: %w", err))
		}
		extra = []byte(out)
	}
	key := m.cacheKey(s.Subject, extra)
	if tok, ok := m.b.cache.Get(key); ok {
		s.SetHeader("Authorization", "Bearer "+tok)
		return nil
	}
	tok, exp, err := m.sign(r.Context(), s.Subject, extra)
	if err != nil {
		return err
	}
	m.b.cache.Set(key, tok, exp.Add(-reuseMargin(m.ttl)))
	s.SetHeader("Authorization", "Bearer "+tok)
	return nil
}

// reuseMargin is how long before expiry a cached token stops being handed
// out: a tenth of the ttl, at most a minute.
func reuseMargin(ttl time.Duration) time.Duration {
	return min(ttl/10, time.Minute)
}

func (m *idTokenMutator) cacheKey(subject string, claims []byte) [32]byte {
	h := sha256.New()
	for _, part := range []string{m.issuer, m.source.URL(), m.ttl.String(), strings.Join(m.audience, "\x1f"), subject} {
		h.Write([]byte(part))
		h.Write([]byte{0})
	}
	h.Write(claims)
	var k [32]byte
	h.Sum(k[:0])
	return k
}

func (m *idTokenMutator) sign(ctx context.Context, subject string, extra []byte) (string, time.Time, error) {
	claims := map[string]any{}
	dec := json.NewDecoder(bytes.NewReader(extra))
	dec.UseNumber()
	if err := dec.Decode(&claims); err != nil {
		return "", time.Time{}, pipeline.NewError(http.StatusInternalServerError, "id_token mutator failed", errors.New("claims do not render a JSON object"))
	}
	// The token's encoder does not know json.Number (it would write a
	// string): numbers keep their JSON type, as in Oathkeeper.
	for k, v := range claims {
		claims[k] = plainNumbers(v)
	}
	now := m.b.now()
	exp := now.Add(m.ttl)
	claims["iss"] = m.issuer
	claims["sub"] = subject
	claims["iat"] = jwt.NewNumericDate(now)
	claims["nbf"] = jwt.NewNumericDate(now)
	claims["exp"] = jwt.NewNumericDate(exp)
	claims["jti"] = newJTI()
	if len(m.audience) > 0 {
		claims["aud"] = m.audience
	}
	key, alg, err := m.signingKey(ctx)
	if err != nil {
		return "", time.Time{}, pipeline.Unavailable("id_token signing key unavailable", err)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		return "", time.Time{}, pipeline.NewError(http.StatusInternalServerError, "id_token mutator failed", err)
	}
	tok, err := jwt.Signed(signer).Claims(claims).Serialize()
	if err != nil {
		return "", time.Time{}, pipeline.NewError(http.StatusInternalServerError, "id_token mutator failed", err)
	}
	return tok, exp, nil
}

// signingKey returns the first key of the set with a private part and an
// algorithm portcullis signs with. The returned JWK carries its kid into
// the token header.
func (m *idTokenMutator) signingKey(ctx context.Context) (jose.JSONWebKey, jose.SignatureAlgorithm, error) {
	set, err := m.source.Keys(ctx)
	if err != nil {
		return jose.JSONWebKey{}, "", err
	}
	for _, k := range set.Keys {
		if k.IsPublic() || (k.Use != "" && k.Use != "sig") {
			continue
		}
		if _, sym := k.Key.([]byte); sym {
			continue
		}
		alg := jwks.AlgorithmFor(k)
		if signingAlgorithms[alg] {
			return k, alg, nil
		}
	}
	return jose.JSONWebKey{}, "", fmt.Errorf("key set %s holds no private signing key", fetch.Redact(m.source.URL()))
}

var signingAlgorithms = map[jose.SignatureAlgorithm]bool{
	jose.RS256: true, jose.RS384: true, jose.RS512: true,
	jose.PS256: true, jose.PS384: true, jose.PS512: true,
	jose.ES256: true, jose.ES384: true, jose.ES512: true,
	jose.EdDSA: true,
}

// newJTI returns a random token id (crypto/rand never fails on the
// platforms Go supports: it aborts the program instead).
func newJTI() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// plainNumbers replaces every json.Number in v by an int64 (when it is an
// integer that fits) or a float64, so that it is encoded as a number.
func plainNumbers(v any) any {
	switch t := v.(type) {
	case json.Number:
		if i, err := t.Int64(); err == nil {
			return i
		}
		if f, err := t.Float64(); err == nil {
			return f
		}
		return t.String()
	case map[string]any:
		for k, x := range t {
			t[k] = plainNumbers(x)
		}
	case []any:
		for i, x := range t {
			t[i] = plainNumbers(x)
		}
	}
	return v
}
