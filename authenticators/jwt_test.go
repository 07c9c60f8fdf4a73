package authenticators

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/portcullis-proxy/portcullis/pipeline"
	"github.com/portcullis-proxy/portcullis/testsupport/faultinject"
	"github.com/portcullis-proxy/portcullis/testsupport/handlertest"
	"github.com/portcullis-proxy/portcullis/testsupport/testkeys"
)

// jwksServer is a real key server on loopback whose document the test can
// rotate or take down.
type jwksServer struct {
	*httptest.Server
	mu   sync.Mutex
	doc  []byte
	down bool
}

func newJWKSServer(t testing.TB, keys ...jose.JSONWebKey) *jwksServer {
	ks := &jwksServer{doc: testkeys.PublicSet(t, keys...)}
	ks.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ks.mu.Lock()
		defer ks.mu.Unlock()
		if ks.down {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(ks.doc)
	}))
	t.Cleanup(ks.Close)
	return ks
}

func (ks *jwksServer) publish(t testing.TB, keys ...jose.JSONWebKey) {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	ks.doc = testkeys.PublicSet(t, keys...)
}

func (ks *jwksServer) setDown(down bool) {
	ks.mu.Lock()
	ks.down = down
	ks.mu.Unlock()
}

func jwtRequest(t testing.TB, rawURL string) (*http.Request, *pipeline.Session) {
	t.Helper()
	r := httptest.NewRequest(http.MethodGet, rawURL, nil)
	u, _ := url.Parse(rawURL)
	return r, pipeline.NewSession(r, u, nil)
}

// newJWTAuthenticator builds a jwt authenticator whose key sets may be
// refreshed without delay (the rate limit is exercised in internal/jwks).
func newJWTAuthenticator(t testing.TB, global, rule map[string]any) pipeline.Authenticator {
	t.Helper()
	b, rb := handlertest.Bind(t, handlertest.JSON(t, global), handlertest.Deps(t), NewJWT)
	rb.(*jwtBuilder).keys.MinRefresh = time.Nanosecond
	return handlertest.Build(t, b, handlertest.JSON(t, rule))
}

func claimsFor(sub string, exp time.Time, extra map[string]any) map[string]any {
	c := map[string]any{
		"sub": sub,
		"iss": "https://idp.example.test/",
		"aud": []string{"chat"},
		"iat": time.Now().Unix(),
		"exp": exp.Unix(),
	}
	for k, v := range extra {
		c[k] = v
	}
	return c
}

func noneToken(claims map[string]any) string {
	enc := base64.RawURLEncoding
	h, _ := json.Marshal(map[string]any{"alg": "none", "typ": "JWT"})
	c, _ := json.Marshal(claims)
	return enc.EncodeToString(h) + "." + enc.EncodeToString(c) + "."
}

func hmacToken(t *testing.T, claims map[string]any) string {
	return testkeys.Sign(t, jose.JSONWebKey{Key: []byte("0123456789abcdef0123456789abcdef"), KeyID: "rsa-1", Algorithm: "HS256"}, claims, false)
}

func TestJWTAuthenticator(t *testing.T) {
	rsaKey, ecKey, stranger := testkeys.RSA(t, "rsa-1"), testkeys.EC(t, "ec-1"), testkeys.RSA(t, "stranger")
	ks := newJWKSServer(t, rsaKey, ecKey)
	a := newJWTAuthenticator(t, map[string]any{"jwks_urls": []string{ks.URL + "/jwks.json"}}, map[string]any{
		"allowed_algorithms": []string{"RS256", "ES256"},
		"trusted_issuers":    []string{"https://idp.example.test/"},
		"target_audience":    []string{"chat"},
		"required_scope":     []string{"chat.read"},
		"scope_strategy":     "hierarchic",
	})
	hour := time.Now().Add(time.Hour)
	scoped := map[string]any{"scp": []string{"chat"}}
	tests := []struct {
		name  string
		token string
		want  int // 0 ok, -1 not responsible, else status
	}{
		{"RS256", testkeys.Sign(t, rsaKey, claimsFor("alice", hour, scoped), false), 0},
		{"ES256", testkeys.Sign(t, ecKey, claimsFor("alice", hour, scoped), false), 0},
		{"no kid (Oathkeeper requires one)", testkeys.Sign(t, ecKey, claimsFor("alice", hour, scoped), true), 401},
		{"scope as a string", testkeys.Sign(t, rsaKey, claimsFor("alice", hour, map[string]any{"scope": "openid chat.read"}), false), 0},
		{"expired", testkeys.Sign(t, rsaKey, claimsFor("alice", time.Now().Add(-time.Minute), scoped), false), 401},
		{"expired within leeway", testkeys.Sign(t, rsaKey, claimsFor("alice", time.Now().Add(-2*time.Second), scoped), false), 0},
		{"not yet valid", testkeys.Sign(t, rsaKey, claimsFor("alice", hour, map[string]any{"scp": []string{"chat"}, "nbf": time.Now().Add(10 * time.Minute).Unix()}), false), 401},
		{"wrong issuer", testkeys.Sign(t, rsaKey, claimsFor("alice", hour, map[string]any{"scp": []string{"chat"}, "iss": "https://evil.test/"}), false), 401},
		{"wrong audience", testkeys.Sign(t, rsaKey, claimsFor("alice", hour, map[string]any{"scp": []string{"chat"}, "aud": "billing"}), false), 401},
		{"missing scope", testkeys.Sign(t, rsaKey, claimsFor("alice", hour, map[string]any{"scp": []string{"billing"}}), false), 401},
		{"unknown kid", testkeys.Sign(t, stranger, claimsFor("alice", hour, scoped), false), 401},
		{"known kid, foreign key", testkeys.Sign(t, jose.JSONWebKey{Key: stranger.Key, KeyID: "rsa-1", Algorithm: "RS256"}, claimsFor("alice", hour, scoped), false), 401},
		{"alg none", noneToken(claimsFor("alice", hour, scoped)), 401},
		{"HS256 with the public key id", hmacToken(t, claimsFor("alice", hour, scoped)), 401},
		{"malformed", "abc.def.ghi", 401},
		{"opaque token", "ory_at_opaque-token-value", -1},
		{"no token", "", -1},
	}
	for _, tt := range tests {
		r, s := jwtRequest(t, "http://gw.test/ws")
		if tt.token != "" {
			r.Header.Set("Authorization", "Bearer "+tt.token)
		}
		err := a.Authenticate(r, s)
		switch {
		case tt.want == -1:
			if !errors.Is(err, pipeline.ErrNotResponsible) {
				t.Errorf("%s: Authenticate = %v, want not responsible", tt.name, err)
			}
		case tt.want == 0:
			if err != nil {
				t.Errorf("%s: Authenticate = %v, want accepted", tt.name, err)
			} else if s.Subject != "alice" || s.ExpiresAt.IsZero() || s.Extra["iss"] != "https://idp.example.test/" {
				t.Errorf("%s: session = %q, exp %v, extra %v", tt.name, s.Subject, s.ExpiresAt, s.Extra)
			}
		default:
			if pipeline.StatusOf(err) != tt.want {
				t.Errorf("%s: Authenticate = %v, want %d", tt.name, err, tt.want)
			}
			if err != nil && strings.Contains(err.Error(), tt.token) {
				t.Errorf("%s: error reveals the token", tt.name)
			}
		}
	}
}

// TestJWTHMACWhenAsked: as in Oathkeeper, HS256 tokens verify against the
// key set's shared secrets when allowed_algorithms lists HS256, and only
// then; an RSA key is never used as an HMAC secret.
func TestJWTHMACWhenAsked(t *testing.T) {
	secret := jose.JSONWebKey{Key: []byte("another-secret-of-thirty-two-byt"), KeyID: "hs-1", Algorithm: "HS256", Use: "sig"}
	rsaKey := testkeys.RSA(t, "rsa-1")
	ks := newJWKSServer(t, rsaKey)
	ks.doc = testkeys.Set(t, secret, rsaKey.Public())
	hour := time.Now().Add(time.Hour)
	asked := newJWTAuthenticator(t, map[string]any{"jwks_urls": []string{ks.URL}}, map[string]any{"allowed_algorithms": []string{"HS256"}})
	byDefault := newJWTAuthenticator(t, map[string]any{"jwks_urls": []string{ks.URL}}, nil)
	for _, tt := range []struct {
		name  string
		a     pipeline.Authenticator
		token string
		want  int
	}{
		{"HS256 allowed", asked, testkeys.Sign(t, secret, claimsFor("alice", hour, nil), false), 0},
		{"HS256 by default", byDefault, testkeys.Sign(t, secret, claimsFor("alice", hour, nil), false), 401},
		{"HS256 with the RSA key's kid", asked, hmacToken(t, claimsFor("alice", hour, nil)), 401},
	} {
		r, s := jwtRequest(t, "http://gw.test/")
		r.Header.Set("Authorization", "Bearer "+tt.token)
		if got := pipeline.StatusOf(tt.a.Authenticate(r, s)); (tt.want == 0 && got != 0 && got != 200) || (tt.want != 0 && got != tt.want) {
			t.Errorf("%s: status %d, want %d", tt.name, got, tt.want)
		}
	}
}

// TestJWTScp: .Extra.scp is always the list of granted scopes, as in
// Oathkeeper, whichever claim carried them.
// TestJWTScopeStrategyNoneWithRequiredScope: as in Oathkeeper, the rule
// loads and every token is rejected, since no scope can be checked.
func TestJWTScopeStrategyNoneWithRequiredScope(t *testing.T) {
	k := testkeys.RSA(t, "k")
	ks := newJWKSServer(t, k)
	a := newJWTAuthenticator(t, map[string]any{"jwks_urls": []string{ks.URL}}, map[string]any{"required_scope": []string{"a"}, "scope_strategy": "none"})
	r, s := jwtRequest(t, "http://gw.test/")
	r.Header.Set("Authorization", "Bearer "+testkeys.Sign(t, k, claimsFor("alice", time.Now().Add(time.Hour), map[string]any{"scp": []string{"a"}}), false))
	if err := a.Authenticate(r, s); pipeline.StatusOf(err) != 401 {
		t.Errorf("Authenticate = %v, want 401", err)
	}
}

func TestJWTScp(t *testing.T) {
	k := testkeys.RSA(t, "k")
	ks := newJWKSServer(t, k)
	a := newJWTAuthenticator(t, map[string]any{"jwks_urls": []string{ks.URL}}, nil)
	hour := time.Now().Add(time.Hour)
	for _, tt := range []struct {
		name   string
		claims map[string]any
		want   string
	}{
		{"scp list", map[string]any{"scp": []string{"scope-3", "scope-2", "scope-1"}}, `["scope-3","scope-2","scope-1"]`},
		{"scope string", map[string]any{"scope": "a b"}, `["a","b"]`},
		{"scopes list", map[string]any{"scopes": []string{"x"}}, `["x"]`},
		{"none", nil, `[]`},
	} {
		r, s := jwtRequest(t, "http://gw.test/")
		r.Header.Set("Authorization", "Bearer "+testkeys.Sign(t, k, claimsFor("alice", hour, tt.claims), false))
		if err := a.Authenticate(r, s); err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		got, _ := json.Marshal(s.Extra["scp"])
		if string(got) != tt.want {
			t.Errorf("%s: Extra.scp = %s, want %s", tt.name, got, tt.want)
		}
		if _, ok := s.Extra["scope"]; ok && tt.name == "scope string" {
			t.Errorf("%s: the scope claim is kept beside scp", tt.name)
		}
	}
}

func TestJWTExpiryBindsSession(t *testing.T) {
	k := testkeys.RSA(t, "k")
	ks := newJWKSServer(t, k)
	a := newJWTAuthenticator(t, map[string]any{"jwks_urls": []string{ks.URL}}, nil)
	exp := time.Now().Add(90 * time.Second).Truncate(time.Second)
	r, s := jwtRequest(t, "http://gw.test/")
	r.Header.Set("Authorization", "Bearer "+testkeys.Sign(t, k, claimsFor("alice", exp, nil), false))
	if err := a.Authenticate(r, s); err != nil {
		t.Fatal(err)
	}
	if !s.ExpiresAt.Equal(exp) {
		t.Errorf("ExpiresAt = %v, want the token's exp %v", s.ExpiresAt, exp)
	}
	if s.Revalidator == nil {
		t.Fatal("no Revalidator set")
	}
	got, err := s.Revalidator.Revalidate(context.Background())
	if err != nil || !got.ExpiresAt.Equal(exp) {
		t.Errorf("Revalidate = %v, %v; want %v", got.ExpiresAt, err, exp)
	}
	// The identity a re-authorization sees is read from the claims as
	// the admitting session was.
	if got.Subject != s.Subject || !reflect.DeepEqual(got.Extra, s.Extra) {
		t.Errorf("Revalidate = subject %q, extra %v; want %q, %v", got.Subject, got.Extra, s.Subject, s.Extra)
	}
	// The key set keeps serving from cache when the key server is down.
	ks.setDown(true)
	if _, err := s.Revalidator.Revalidate(context.Background()); err != nil {
		t.Errorf("Revalidate with the key server down and the key cached = %v, want ok", err)
	}
	// The issuer withdraws the key: revalidation rejects the session.
	ks.setDown(false)
	ks.publish(t, testkeys.RSA(t, "other"))
	if _, err := s.Revalidator.Revalidate(context.Background()); !errors.Is(err, pipeline.ErrUnauthorized) {
		t.Errorf("Revalidate after the key was withdrawn = %v, want 401", err)
	}
}

func TestJWTKeyRotationAndSources(t *testing.T) {
	oldKey, newKey := testkeys.RSA(t, "2024"), testkeys.EC(t, "2025")
	ks := newJWKSServer(t, oldKey)
	fileKey := testkeys.RSA(t, "file-key")
	inline := "inline://" + base64.StdEncoding.EncodeToString(testkeys.PublicSet(t, fileKey))
	a := newJWTAuthenticator(t, map[string]any{"jwks_urls": []string{ks.URL, inline}, "allowed_algorithms": []string{"RS256", "ES256"}}, nil)
	auth := func(tok string) error {
		r, s := jwtRequest(t, "http://gw.test/")
		r.Header.Set("Authorization", "Bearer "+tok)
		return a.Authenticate(r, s)
	}
	hour := time.Now().Add(time.Hour)
	if err := auth(testkeys.Sign(t, oldKey, claimsFor("a", hour, nil), false)); err != nil {
		t.Fatal(err)
	}
	if err := auth(testkeys.Sign(t, fileKey, claimsFor("a", hour, nil), false)); err != nil {
		t.Errorf("key from the second (inline) key set: %v", err)
	}
	// The issuer rotates: a token with the new kid triggers a refresh.
	ks.publish(t, oldKey, newKey)
	if err := auth(testkeys.Sign(t, newKey, claimsFor("a", hour, nil), false)); err != nil {
		t.Errorf("token signed with the rotated-in key: %v", err)
	}
}

func TestJWTTokenLocationsAndScrub(t *testing.T) {
	k := testkeys.RSA(t, "k")
	ks := newJWKSServer(t, k)
	tok := testkeys.Sign(t, k, claimsFor("alice", time.Now().Add(time.Hour), nil), false)

	q := newJWTAuthenticator(t, map[string]any{"jwks_urls": []string{ks.URL}}, map[string]any{"token_from": map[string]any{"query_parameter": "access_token"}})
	r, s := jwtRequest(t, "http://gw.test/ws?access_token="+tok+"&room=1")
	if err := q.Authenticate(r, s); err != nil {
		t.Fatal(err)
	}
	if len(s.Scrub.QueryParams) != 1 || s.Scrub.QueryParams[0] != "access_token" {
		t.Errorf("Scrub.QueryParams = %v, want [access_token]", s.Scrub.QueryParams)
	}

	c := newJWTAuthenticator(t, map[string]any{"jwks_urls": []string{ks.URL}}, map[string]any{"token_from": map[string]any{"cookie": "id_token"}})
	r, s = jwtRequest(t, "http://gw.test/ws")
	r.AddCookie(&http.Cookie{Name: "id_token", Value: tok})
	if err := c.Authenticate(r, s); err != nil || s.Subject != "alice" {
		t.Errorf("token from cookie: %v, subject %q", err, s.Subject)
	}
	// With token_from set to a cookie, the Authorization header is ignored.
	r, s = jwtRequest(t, "http://gw.test/ws")
	r.Header.Set("Authorization", "Bearer "+tok)
	if err := c.Authenticate(r, s); !errors.Is(err, pipeline.ErrNotResponsible) {
		t.Errorf("header token with cookie location: %v, want not responsible", err)
	}
}

func TestJWTKeySetDownFailsClosed(t *testing.T) {
	closed := faultinject.RefusingURL(t) + "/jwks.json"
	k := testkeys.RSA(t, "k")
	a := newJWTAuthenticator(t, map[string]any{"jwks_urls": []string{closed}}, nil)
	r, s := jwtRequest(t, "http://gw.test/")
	r.Header.Set("Authorization", "Bearer "+testkeys.Sign(t, k, claimsFor("a", time.Now().Add(time.Hour), nil), false))
	if err := a.Authenticate(r, s); !errors.Is(err, pipeline.ErrServiceUnavailable) {
		t.Errorf("key set unreachable: %v, want 503", err)
	}
	if s.Subject != "" {
		t.Error("no identity may be set when verification failed")
	}
}

func TestJWTConfigErrors(t *testing.T) {
	b := handlertest.Enable(t, pipeline.SharedFactory(NewJWT), handlertest.JSON(t, map[string]any{"jwks_urls": []string{"http://127.0.0.1:1/jwks"}}), handlertest.Deps(t))
	for name, rule := range map[string]map[string]any{
		"none algorithm":       {"allowed_algorithms": []string{"none"}},
		"unknown strategy":     {"scope_strategy": "fuzzy"},
		"two token places":     {"token_from": map[string]any{"header": "X", "cookie": "c"}},
		"per-rule jwks_ttl":    {"jwks_ttl": "1s"},
		"unknown key":          {"jwks_url": "http://x"},
		"bad jwks scheme":      {"jwks_urls": []string{"ftp://x"}},
		"empty jwks_urls list": {"jwks_urls": []string{}},
	} {
		if _, err := b.Build(handlertest.JSON(t, rule)); err == nil {
			t.Errorf("%s: Build must fail", name)
		}
	}
}

// TestJWTWithoutSubjectIsRefused: a valid signature over claims without a
// sub (absent, empty, blank or not a string) is a 401, as a session without
// a subject is, never an admission with an empty X-User.
func TestJWTWithoutSubjectIsRefused(t *testing.T) {
	k := testkeys.RSA(t, "k1")
	ks := newJWKSServer(t, k)
	a := newJWTAuthenticator(t, map[string]any{"jwks_urls": []string{ks.URL}}, nil)
	for name, sub := range map[string]any{"absent": nil, "empty": "", "blank": "  ", "number": 42} {
		claims := claimsFor("x", time.Now().Add(time.Hour), nil)
		if sub == nil {
			delete(claims, "sub")
		} else {
			claims["sub"] = sub
		}
		r, s := jwtRequest(t, "http://gw.test/x")
		r.Header.Set("Authorization", "Bearer "+testkeys.Sign(t, k, claims, false))
		if err := a.Authenticate(r, s); pipeline.StatusOf(err) != http.StatusUnauthorized {
			t.Errorf("sub %s: %v (subject %q), want 401", name, err, s.Subject)
		}
	}
}
