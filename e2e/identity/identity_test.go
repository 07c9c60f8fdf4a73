package identity

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	gjwt "github.com/golang-jwt/jwt/v5"

	"github.com/portcullis-proxy/portcullis/testsupport/servertest"
	"github.com/portcullis-proxy/portcullis/testsupport/testkeys"
)

// verifyingUpstream is the protected service: it trusts only ID tokens
// that verify against the gateway's published keys, fetched over HTTP and
// checked with an independent JWT library.
func verifyingUpstream(t *testing.T, jwksURL *string) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		claims := gjwt.MapClaims{}
		_, err := gjwt.ParseWithClaims(tok, claims, func(tk *gjwt.Token) (any, error) {
			return fetchKey(*jwksURL, tk.Header["kid"])
		}, gjwt.WithValidMethods([]string{"ES256"}), gjwt.WithIssuer("https://gw.example.test/"), gjwt.WithAudience("chat-backend"), gjwt.WithExpirationRequired())
		if err != nil {
			http.Error(w, "untrusted: "+err.Error(), http.StatusUnauthorized)
			return
		}
		fmt.Fprintf(w, "verified %s in %s", claims["sub"], claims["room"])
	}))
	t.Cleanup(srv.Close)
	return srv
}

func fetchKey(jwksURL string, kid any) (any, error) {
	res, err := http.Get(jwksURL)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	var doc struct {
		Keys []map[string]string `json:"keys"`
	}
	if err := json.NewDecoder(res.Body).Decode(&doc); err != nil {
		return nil, err
	}
	num := func(s string) *big.Int {
		b, _ := base64.RawURLEncoding.DecodeString(s)
		return new(big.Int).SetBytes(b)
	}
	for _, k := range doc.Keys {
		if k["kid"] != kid {
			continue
		}
		if k["d"] != "" {
			return nil, fmt.Errorf("published key carries a private part")
		}
		switch k["kty"] {
		case "EC":
			return &ecdsa.PublicKey{Curve: elliptic.P256(), X: num(k["x"]), Y: num(k["y"])}, nil
		case "RSA":
			return &rsa.PublicKey{N: num(k["n"]), E: int(num(k["e"]).Int64())}, nil
		}
	}
	return nil, fmt.Errorf("kid %v not published", kid)
}

type decisionAPI struct {
	mu     sync.Mutex
	status int
}

func TestJWTLadonRemoteIDTokenEndToEnd(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}

	// The identity provider's keys, served by a real key server.
	idpKey := testkeys.RSA(t, "idp-1")
	idp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write(testkeys.PublicSet(t, idpKey))
	}))
	defer idp.Close()

	// The gateway's own ID token signing key.
	gwKeys := write("id_token.jwks.json", string(testkeys.Set(t, testkeys.EC(t, "gw-1"))))

	// Kaazing-style role requirement as a ladon policy over a JWT claim.
	policies := write("policies.yaml", `
- id: chat-requires-authorized-role
  subjects: ["<.*>"]
  actions: ["connect"]
  resources: ["rn:chat:<[a-z]+>"]
  effect: allow
  conditions:
    extra.role:
      type: StringEqualCondition
      options: {equals: AUTHORIZED}
`)

	api := &decisionAPI{status: http.StatusOK}
	decisions := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		api.mu.Lock()
		defer api.mu.Unlock()
		var body map[string]string
		json.NewDecoder(r.Body).Decode(&body)
		if body["subject"] != "alice" {
			w.WriteHeader(http.StatusForbidden)
			return
		}
		w.WriteHeader(api.status)
	}))
	defer decisions.Close()

	var jwksURL string
	upstream := verifyingUpstream(t, &jwksURL)

	rules := fmt.Sprintf(`
- id: chat
  match: {url: "http://<[^/]+>/chat/<[a-z]+>", methods: [GET]}
  authenticators: [{handler: jwt}]
  authorizer:
    handler: ladon
    config:
      required_action: connect
      required_resource: "rn:chat:{{ printIndex .MatchContext.RegexpCaptureGroups 1 }}"
  mutators:
    - handler: id_token
      config:
        claims: '{"room": {{ printIndex .MatchContext.RegexpCaptureGroups 1 | toJson }}}'
  upstream: {url: %[1]q}
- id: ops
  match: {url: "http://<[^/]+>/ops/<[a-z]+>", methods: [GET]}
  authenticators: [{handler: jwt}]
  authorizer:
    handler: remote_json
    config:
      payload: '{"subject": {{ .Subject | toJson }}}'
  mutators:
    - handler: id_token
      config:
        claims: '{"room": "ops"}'
  upstream: {url: %[1]q}
`, upstream.URL)
	srv := servertest.Start(t, servertest.Config{Rules: rules, YAML: fmt.Sprintf(`
authenticators:
  jwt:
    enabled: true
    config:
      jwks_urls: [%q]
      trusted_issuers: ["https://idp.example.test/"]
authorizers:
  ladon:
    enabled: true
    config: {repositories: ["file://%s"]}
  remote_json:
    enabled: true
    config: {remote: %q, timeout: 500ms}
mutators:
  id_token:
    enabled: true
    config:
      issuer_url: https://gw.example.test/
      jwks_url: "file://%s"
      audience: [chat-backend]
`, idp.URL+"/jwks.json", policies, decisions.URL, gwKeys)})
	proxyURL, apiURL := srv.URL(), srv.APIURL()
	jwksURL = apiURL + "/.well-known/jwks.json"

	token := func(sub, role string, exp time.Time) string {
		return testkeys.Sign(t, idpKey, map[string]any{
			"sub": sub, "role": role, "iss": "https://idp.example.test/",
			"iat": time.Now().Unix(), "exp": exp.Unix(),
		}, false)
	}
	hour := time.Now().Add(time.Hour)
	get := func(url, tok string) (int, string) {
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		return servertest.Fetch(t, req)
	}

	tests := []struct {
		name, path, tok string
		status          int
		body            string
	}{
		{"authorized role reaches the upstream with a verifiable ID token", "/chat/lobby", token("alice", "AUTHORIZED", hour), 200, "verified alice in lobby"},
		{"other role is refused by policy", "/chat/lobby", token("bob", "GUEST", hour), 403, ""},
		{"expired token", "/chat/lobby", token("alice", "AUTHORIZED", time.Now().Add(-time.Hour)), 401, ""},
		{"forged token", "/chat/lobby", testkeys.Sign(t, testkeys.RSA(t, "idp-1"), map[string]any{"sub": "alice", "role": "AUTHORIZED", "iss": "https://idp.example.test/", "exp": hour.Unix()}, false), 401, ""},
		{"no token", "/chat/lobby", "", 401, ""},
		{"remote decision allows", "/ops/board", token("alice", "GUEST", hour), 200, "verified alice in ops"},
		{"remote decision denies", "/ops/board", token("bob", "GUEST", hour), 403, ""},
	}
	for _, tt := range tests {
		status, body := get(proxyURL+tt.path, tt.tok)
		if status != tt.status || (tt.body != "" && body != tt.body) {
			t.Errorf("%s: %d %q, want %d %q", tt.name, status, body, tt.status, tt.body)
		}
	}

	// The decision API in front of the same pipeline returns the ID token.
	req, _ := http.NewRequest(http.MethodGet, apiURL+"/decisions/chat/lobby", nil)
	req.Header.Set("Authorization", "Bearer "+token("alice", "AUTHORIZED", hour))
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 || !strings.HasPrefix(res.Header.Get("Authorization"), "Bearer ey") {
		t.Errorf("decision = %d, Authorization %q", res.StatusCode, res.Header.Get("Authorization"))
	}

	// The remote decision API goes down: denied with 503, never let through.
	decisions.Close()
	if status, _ := get(proxyURL+"/ops/board", token("alice", "GUEST", hour)); status != http.StatusServiceUnavailable {
		t.Errorf("decision API down: %d, want 503", status)
	}
}
