package mutators

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	gjwt "github.com/golang-jwt/jwt/v5"

	"github.com/portcullis-proxy/portcullis/pipeline"
	"github.com/portcullis-proxy/portcullis/testsupport/faultinject"
	"github.com/portcullis-proxy/portcullis/testsupport/handlertest"
	"github.com/portcullis-proxy/portcullis/testsupport/testkeys"
)

// idTokenBuilders enables id_token on the global config as the catalog
// does and returns its builder and the rule builder behind it, whose
// clock and cache a test may set.
func idTokenBuilders(t testing.TB, global json.RawMessage, deps pipeline.Deps) (pipeline.Builder[pipeline.Mutator], *idTokenBuilder) {
	t.Helper()
	b, rb := handlertest.Bind(t, global, deps, NewIDToken)
	return b, rb.(*idTokenBuilder)
}

func newSession(t testing.TB, subject, rawURL string, groups ...string) (*http.Request, *pipeline.Session) {
	t.Helper()
	r := httptest.NewRequest(http.MethodGet, rawURL, nil)
	u, _ := url.Parse(rawURL)
	s := pipeline.NewSession(r, u, groups)
	s.Subject = subject
	s.Extra = map[string]any{"identity": map[string]any{"traits": map[string]any{"email": subject + "@example.test"}}}
	return r, s
}

// writeKeySet writes a private JWKS document to a temporary file and returns
// its file:// URL.
func writeKeySet(t *testing.T, doc []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(path, doc, 0o600); err != nil {
		t.Fatal(err)
	}
	return "file://" + path
}

// publishedKeys fetches the jwks.json the builder serves, through a real
// HTTP server, and decodes each key with the standard library only, so the
// verification below shares no code with the signer.
func publishedKeys(t *testing.T, b pipeline.Builder[pipeline.Mutator]) (map[string]any, []map[string]any) {
	t.Helper()
	router, ok := b.(pipeline.APIRouter)
	if !ok {
		t.Fatal("the id_token builder must serve API routes")
	}
	mux := http.NewServeMux()
	for p, h := range router.APIRoutes() {
		mux.Handle(p, h)
	}
	srv := httptest.NewServer(mux)
	defer srv.Close()
	res, err := http.Get(srv.URL + "/.well-known/jwks.json")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != 200 || !strings.HasPrefix(res.Header.Get("Content-Type"), "application/json") {
		t.Fatalf("jwks.json answered %d %s", res.StatusCode, res.Header.Get("Content-Type"))
	}
	body, _ := io.ReadAll(res.Body)
	var doc struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatal(err)
	}
	keys := map[string]any{}
	for _, k := range doc.Keys {
		for _, private := range []string{"d", "p", "q", "dp", "dq", "qi", "k"} {
			if _, ok := k[private]; ok {
				t.Fatalf("jwks.json publishes private member %q of key %v", private, k["kid"])
			}
		}
		keys[k["kid"].(string)] = publicKey(t, k)
	}
	return keys, doc.Keys
}

func b64int(t *testing.T, s any) *big.Int {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(s.(string))
	if err != nil {
		t.Fatal(err)
	}
	return new(big.Int).SetBytes(b)
}

func publicKey(t *testing.T, k map[string]any) any {
	switch k["kty"] {
	case "RSA":
		return &rsa.PublicKey{N: b64int(t, k["n"]), E: int(b64int(t, k["e"]).Int64())}
	case "EC":
		if k["crv"] != "P-256" {
			t.Fatalf("unexpected curve %v", k["crv"])
		}
		return &ecdsa.PublicKey{Curve: elliptic.P256(), X: b64int(t, k["x"]), Y: b64int(t, k["y"])}
	}
	t.Fatalf("unexpected key type %v", k["kty"])
	return nil
}

// verify checks tok with golang-jwt against the published keys.
func verify(t *testing.T, keys map[string]any, tok, alg, issuer, audience string) gjwt.MapClaims {
	t.Helper()
	claims := gjwt.MapClaims{}
	opts := []gjwt.ParserOption{gjwt.WithValidMethods([]string{alg}), gjwt.WithIssuer(issuer), gjwt.WithExpirationRequired(), gjwt.WithIssuedAt()}
	if audience != "" {
		opts = append(opts, gjwt.WithAudience(audience))
	}
	_, err := gjwt.ParseWithClaims(tok, claims, func(tk *gjwt.Token) (any, error) {
		kid, _ := tk.Header["kid"].(string)
		k, ok := keys[kid]
		if !ok {
			return nil, fmt.Errorf("kid %q is not published", kid)
		}
		return k, nil
	}, opts...)
	if err != nil {
		t.Fatalf("ID token does not verify against jwks.json: %v", err)
	}
	return claims
}

func bearerOf(t *testing.T, s *pipeline.Session) string {
	t.Helper()
	h := s.Header.Get("Authorization")
	if !strings.HasPrefix(h, "Bearer ") {
		t.Fatalf("Authorization = %q, want a Bearer token", h)
	}
	return strings.TrimPrefix(h, "Bearer ")
}

func TestIDTokenVerifiesAgainstPublishedKeys(t *testing.T) {
	for _, tc := range []struct {
		alg string
		doc []byte
	}{
		{"RS256", testkeys.Set(t, testkeys.RSA(t, "rsa-1"))},
		{"ES256", testkeys.Set(t, testkeys.EC(t, "ec-1"))},
	} {
		t.Run(tc.alg, func(t *testing.T) {
			b := handlertest.Enable(t, pipeline.SharedFactory(NewIDToken), handlertest.JSON(t, map[string]any{
				"issuer_url": "https://gateway.example.test/",
				"jwks_url":   writeKeySet(t, tc.doc),
			}), handlertest.Deps(t))
			m, err := b.Build(handlertest.JSON(t, map[string]any{
				"ttl":      "10m",
				"audience": []string{"chat-backend"},
				"claims":   `{"email": {{ .Extra.identity.traits.email | toJson }}, "room": "{{ printIndex .MatchContext.RegexpCaptureGroups 0 }}", "iss": "forged", "sub": "forged"}`,
			}))
			if err != nil {
				t.Fatal(err)
			}
			r, s := newSession(t, "alice", "http://gw.test/ws/lobby", "lobby")
			s.Header.Set("Authorization", "Bearer client-sent")
			if err := m.Mutate(r, s); err != nil {
				t.Fatal(err)
			}
			keys, _ := publishedKeys(t, b)
			claims := verify(t, keys, bearerOf(t, s), tc.alg, "https://gateway.example.test/", "chat-backend")
			for k, want := range map[string]any{"sub": "alice", "email": "alice@example.test", "room": "lobby", "iss": "https://gateway.example.test/"} {
				if claims[k] != want {
					t.Errorf("claim %s = %v, want %v", k, claims[k], want)
				}
			}
			exp, _ := claims.GetExpirationTime()
			iat, _ := claims.GetIssuedAt()
			if d := exp.Sub(iat.Time); d != 10*time.Minute {
				t.Errorf("exp - iat = %v, want the ttl 10m", d)
			}
			if claims["jti"] == "" || claims["jti"] == nil {
				t.Error("jti missing")
			}
		})
	}
}

// TestIDTokenClaimsKeepJSONTypes: a number the claims template renders
// stays a number in the token (Oathkeeper's mutator_id_token_test.go), as do
// booleans, lists and objects.
func TestIDTokenClaimsKeepJSONTypes(t *testing.T) {
	b, err := pipeline.SharedFactory(NewIDToken)(handlertest.JSON(t, map[string]any{
		"issuer_url": "https://gateway.example.test/",
		"jwks_url":   writeKeySet(t, testkeys.Set(t, testkeys.RSA(t, "rsa-1"))),
	}), handlertest.Deps(t))
	if err != nil {
		t.Fatal(err)
	}
	m, err := b.Build(handlertest.JSON(t, map[string]any{
		"claims": `{"n": {{ print .Extra.n }}, "f": 1.5, "big": 9007199254740993, "flag": true, "list": [1, "a"], "obj": {"m": 2}}`,
	}))
	if err != nil {
		t.Fatal(err)
	}
	r, s := newSession(t, "alice", "http://gw.test/")
	s.Extra["n"] = 10
	if err := m.Mutate(r, s); err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(bearerOf(t, s), ".")
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	var got map[string]json.RawMessage
	if err := json.Unmarshal(payload, &got); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{"n": `10`, "f": `1.5`, "big": `9007199254740993`, "flag": `true`, "list": `[1,"a"]`, "obj": `{"m":2}`} {
		if string(got[k]) != want {
			t.Errorf("claim %s = %s, want %s", k, got[k], want)
		}
	}
}

func TestIDTokenCache(t *testing.T) {
	b, ib := idTokenBuilders(t, handlertest.JSON(t, map[string]any{
		"issuer_url": "https://gw.example.test/",
		"jwks_url":   writeKeySet(t, testkeys.Set(t, testkeys.EC(t, "ec"))),
		"claims":     `{"room": "{{ printIndex .MatchContext.RegexpCaptureGroups 0 }}"}`,
		"ttl":        "100s",
	}), handlertest.Deps(t))
	now := time.Unix(1_700_000_000, 0)
	ib.now = func() time.Time { return now }
	ib.cache.Now = ib.now
	m := handlertest.Build(t, b, nil)
	mint := func(sub, room string) string {
		r, s := newSession(t, sub, "http://gw.test/ws/"+room, room)
		if err := m.Mutate(r, s); err != nil {
			t.Fatal(err)
		}
		return bearerOf(t, s)
	}
	first := mint("alice", "a")
	if again := mint("alice", "a"); again != first {
		t.Error("a second request with the same identity and claims must reuse the signed token")
	}
	if mint("bob", "a") == first || mint("alice", "b") == first {
		t.Error("a different subject or different claims must get a different token")
	}
	// Reused until a tenth of the ttl before expiry (10s here).
	now = now.Add(89 * time.Second)
	if mint("alice", "a") != first {
		t.Error("the token must be reused while more than the margin remains")
	}
	now = now.Add(2 * time.Second)
	if mint("alice", "a") == first {
		t.Error("a token within the margin of its expiry must not be handed out")
	}
}

func TestIDTokenFailures(t *testing.T) {
	deps := handlertest.Deps(t)
	good := writeKeySet(t, testkeys.Set(t, testkeys.RSA(t, "r")))
	publicOnly := writeKeySet(t, testkeys.PublicSet(t, testkeys.RSA(t, "p")))

	for name, cfg := range map[string]map[string]any{
		"no issuer":         {"jwks_url": good},
		"no jwks":           {"issuer_url": "https://i/"},
		"missing file":      {"issuer_url": "https://i/", "jwks_url": "file:///does/not/exist.json"},
		"public keys only":  {"issuer_url": "https://i/", "jwks_url": publicOnly},
		"bad scheme":        {"issuer_url": "https://i/", "jwks_url": "ftp://x/jwks.json"},
		"tiny ttl":          {"issuer_url": "https://i/", "jwks_url": good, "ttl": "1ms"},
		"bad claims syntax": {"issuer_url": "https://i/", "jwks_url": good, "claims": "{{"},
		"unknown key":       {"issuer_url": "https://i/", "jwks_url": good, "claim": "{}"},
	} {
		b := handlertest.Enable(t, pipeline.SharedFactory(NewIDToken), nil, deps)
		if _, err := b.Build(handlertest.JSON(t, cfg)); err == nil {
			t.Errorf("%s: Build must fail", name)
		}
	}

	// Claims that are not a JSON object: 500.
	b, _ := pipeline.SharedFactory(NewIDToken)(nil, deps)
	m := handlertest.Build(t, b, handlertest.JSON(t, map[string]any{"issuer_url": "https://i/", "jwks_url": good, "claims": `["not", "an", "object"]`}))
	r, s := newSession(t, "alice", "http://gw.test/")
	if err := m.Mutate(r, s); pipeline.StatusOf(err) != http.StatusInternalServerError {
		t.Errorf("non-object claims: %v, want 500", err)
	}

	// A remote key set that is down: the rule loads, requests fail with 503.
	down := faultinject.RefusingURL(t) + "/jwks.json"
	b, _ = pipeline.SharedFactory(NewIDToken)(nil, deps)
	m, err := b.Build(handlertest.JSON(t, map[string]any{"issuer_url": "https://i/", "jwks_url": down}))
	if err != nil {
		t.Fatalf("a remote key set that is down must not fail the rule load: %v", err)
	}
	r, s = newSession(t, "alice", "http://gw.test/")
	if err := m.Mutate(r, s); !errors.Is(err, pipeline.ErrServiceUnavailable) {
		t.Errorf("key set down: %v, want 503", err)
	}
	if s.Header.Get("Authorization") != "" {
		t.Error("no token may be set when signing failed")
	}
}

func TestIDTokenJWKSEndpoint(t *testing.T) {
	rsaKey, ecKey := testkeys.RSA(t, "rsa"), testkeys.EC(t, "ec")
	// The key set is served over HTTP by a real key server too.
	keySrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write(testkeys.Set(t, ecKey))
	}))
	defer keySrv.Close()
	b := handlertest.Enable(t, pipeline.SharedFactory(NewIDToken), handlertest.JSON(t, map[string]any{"jwks_url": writeKeySet(t, testkeys.Set(t, rsaKey))}), handlertest.Deps(t))
	// Before any rule, the global key set is already published.
	keys, _ := publishedKeys(t, b)
	if _, ok := keys["rsa"]; !ok || len(keys) != 1 {
		t.Fatalf("published %v, want the global key", keys)
	}
	if _, err := b.Build(handlertest.JSON(t, map[string]any{"issuer_url": "https://i/", "jwks_url": keySrv.URL})); err != nil {
		t.Fatal(err)
	}
	keys, raw := publishedKeys(t, b)
	if _, ok := keys["ec"]; !ok || len(keys) != 2 {
		t.Fatalf("published %v, want both key sets", keys)
	}
	for _, k := range raw {
		if k["use"] != "sig" || k["alg"] == nil {
			t.Errorf("published key %v lost its use/alg", k["kid"])
		}
	}
	h := b.(pipeline.APIRouter).APIRoutes()["/.well-known/jwks.json"]
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/.well-known/jwks.json", nil))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST jwks.json = %d, want 405", rec.Code)
	}
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }
