package authenticators

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portcullis-proxy/portcullis/pipeline"
	"github.com/portcullis-proxy/portcullis/testsupport/handlertest"

	"github.com/portcullis-proxy/portcullis/testsupport/faultinject"
)

// authServer is a real RFC 7662 introspection endpoint and RFC 6749 token
// endpoint on loopback, backed by a token table the test edits.
type authServer struct {
	*httptest.Server
	mu            sync.Mutex
	tokens        map[string]map[string]any
	clientToken   string
	requireClient bool
	status        int
	introspects   atomic.Int32
	grants        atomic.Int32
	lastScope     string
}

func newAuthServer(t *testing.T) *authServer {
	as := &authServer{tokens: map[string]map[string]any{}, status: http.StatusOK}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /oauth2/token", func(w http.ResponseWriter, r *http.Request) {
		as.grants.Add(1)
		id, secret, ok := r.BasicAuth()
		if !ok || id != "portcullis" || secret != "s3cret" || r.FormValue("grant_type") != "client_credentials" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		as.mu.Lock()
		as.clientToken = "client-token-" + time.Now().Format("150405.000000000")
		tok := as.clientToken
		as.mu.Unlock()
		json.NewEncoder(w).Encode(map[string]any{"access_token": tok, "token_type": "bearer", "expires_in": 3600})
	})
	mux.HandleFunc("POST /oauth2/introspect", func(w http.ResponseWriter, r *http.Request) {
		as.introspects.Add(1)
		as.mu.Lock()
		defer as.mu.Unlock()
		if as.status != http.StatusOK {
			w.WriteHeader(as.status)
			return
		}
		if as.requireClient && r.Header.Get("Authorization") != "Bearer "+as.clientToken {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		as.lastScope = r.FormValue("scope")
		ans, ok := as.tokens[r.FormValue("token")]
		if !ok {
			ans = map[string]any{"active": false}
		}
		json.NewEncoder(w).Encode(ans)
	})
	as.Server = httptest.NewServer(mux)
	t.Cleanup(as.Close)
	return as
}

func (as *authServer) issue(token string, ans map[string]any) {
	as.mu.Lock()
	defer as.mu.Unlock()
	as.tokens[token] = ans
}

func (as *authServer) revoke(token string) {
	as.mu.Lock()
	defer as.mu.Unlock()
	delete(as.tokens, token)
}

func activeToken(sub string, exp time.Time, extra map[string]any) map[string]any {
	a := map[string]any{
		"active": true, "sub": sub, "client_id": "chat-app", "username": sub + "-name",
		"scope": "openid chat.read", "aud": []string{"chat"}, "iss": "https://auth.example.test/",
		"exp": exp.Unix(), "iat": time.Now().Unix(), "token_type": "Bearer",
		"ext": map[string]any{"tenant": "blue"},
	}
	for k, v := range extra {
		a[k] = v
	}
	return a
}

func newIntrospection(t *testing.T, cfg map[string]any) (pipeline.Authenticator, *introspectionBuilder) {
	t.Helper()
	b, rb := handlertest.Bind(t, nil, handlertest.Deps(t), NewOAuth2Introspection)
	return handlertest.Build(t, b, handlertest.JSON(t, cfg)), rb.(*introspectionBuilder)
}

func introspectionRequest(t *testing.T, token string) (*http.Request, *pipeline.Session) {
	r, s := jwtRequest(t, "http://gw.test/ws")
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	return r, s
}

func TestIntrospectionChecks(t *testing.T) {
	as := newAuthServer(t)
	hour := time.Now().Add(time.Hour)
	as.issue("good", activeToken("alice", hour, nil))
	as.issue("expired-but-active", activeToken("alice", time.Now().Add(-time.Minute), nil))
	as.issue("id-token", activeToken("alice", hour, map[string]any{"token_use": "id_token"}))
	as.issue("foreign-issuer", activeToken("alice", hour, map[string]any{"iss": "https://evil.test/"}))
	as.issue("other-audience", activeToken("alice", hour, map[string]any{"aud": "billing"}))
	as.issue("narrow-scope", activeToken("alice", hour, map[string]any{"scope": "openid"}))
	as.issue("future", activeToken("alice", hour, map[string]any{"nbf": time.Now().Add(time.Hour).Unix()}))

	a, _ := newIntrospection(t, map[string]any{
		"introspection_url": as.URL + "/oauth2/introspect",
		"required_scope":    []string{"chat.read"},
		"scope_strategy":    "exact",
		"target_audience":   []string{"chat"},
		"trusted_issuers":   []string{"https://auth.example.test/"},
	})
	tests := []struct {
		token string
		want  int // 0 ok, -1 not responsible
	}{
		{"good", 0},
		{"", -1},
		{"unknown", 401},
		{"expired-but-active", 401},
		// An active token that fails a check is a 403, as in Oathkeeper.
		{"id-token", 403},
		{"foreign-issuer", 403},
		{"other-audience", 403},
		{"narrow-scope", 403},
		{"future", 401},
	}
	for _, tt := range tests {
		r, s := introspectionRequest(t, tt.token)
		err := a.Authenticate(r, s)
		switch tt.want {
		case -1:
			if !errors.Is(err, pipeline.ErrNotResponsible) {
				t.Errorf("%q: %v, want not responsible", tt.token, err)
			}
		case 0:
			if err != nil {
				t.Fatalf("%q: %v", tt.token, err)
			}
			if s.Subject != "alice" || s.Extra["tenant"] != "blue" || s.Extra["username"] != "alice-name" || s.Extra["client_id"] != "chat-app" {
				t.Errorf("session = %q %v", s.Subject, s.Extra)
			}
			if !s.ExpiresAt.Equal(time.Unix(hour.Unix(), 0)) {
				t.Errorf("ExpiresAt = %v, want %v", s.ExpiresAt, hour)
			}
		default:
			if pipeline.StatusOf(err) != tt.want {
				t.Errorf("%q: %v, want %d", tt.token, err, tt.want)
			}
		}
	}
	as.mu.Lock()
	if as.lastScope != "" {
		t.Errorf("introspection request scope = %q, want none: the strategy checks it here", as.lastScope)
	}
	as.mu.Unlock()
	// Without a strategy (Oathkeeper's default) the endpoint is asked to
	// check the scope, and nothing is checked here.
	endpoint, _ := newIntrospection(t, map[string]any{
		"introspection_url": as.URL + "/oauth2/introspect",
		"required_scope":    []string{"chat.read"},
	})
	nr, ns := introspectionRequest(t, "narrow-scope")
	if err := endpoint.Authenticate(nr, ns); err != nil {
		t.Errorf("no strategy: %v, want the endpoint's answer to decide", err)
	}
	as.mu.Lock()
	if as.lastScope != "chat.read" {
		t.Errorf("introspection request scope = %q, want the required scopes", as.lastScope)
	}
	as.mu.Unlock()

	p, _ := newIntrospection(t, map[string]any{"introspection_url": as.URL + "/oauth2/introspect", "prefix": "ory_at_"})
	r, s := introspectionRequest(t, "good")
	if err := p.Authenticate(r, s); !errors.Is(err, pipeline.ErrNotResponsible) {
		t.Errorf("token without the prefix: %v, want not responsible", err)
	}
}

func TestIntrospectionCacheAndRevocation(t *testing.T) {
	as := newAuthServer(t)
	as.issue("tok", activeToken("alice", time.Now().Add(time.Hour), nil))
	a, b := newIntrospection(t, map[string]any{
		"introspection_url": as.URL + "/oauth2/introspect",
		"cache":             map[string]any{"enabled": true, "ttl": "10m"},
	})
	now := time.Now()
	b.now = func() time.Time { return now }
	b.answers.Now = b.now

	for i := 0; i < 3; i++ {
		r, s := introspectionRequest(t, "tok")
		if err := a.Authenticate(r, s); err != nil {
			t.Fatal(err)
		}
		s.Extra["tenant"] = "tampered" // must not reach the cached answer
	}
	if n := as.introspects.Load(); n != 1 {
		t.Errorf("introspected %d times, want 1 (cached)", n)
	}
	r, s := introspectionRequest(t, "tok")
	if err := a.Authenticate(r, s); err != nil || s.Extra["tenant"] != "blue" {
		t.Errorf("cached answer was modified through a session: %v %v", err, s.Extra)
	}

	// Revoked at the server: cached requests still pass until the ttl, but
	// the revalidator asks the server and rejects.
	as.revoke("tok")
	r, s = introspectionRequest(t, "tok")
	if err := a.Authenticate(r, s); err != nil {
		t.Fatalf("cached token: %v", err)
	}
	if _, err := s.Revalidator.Revalidate(context.Background()); !errors.Is(err, pipeline.ErrUnauthorized) {
		t.Errorf("Revalidate after revocation = %v, want 401", err)
	}
	now = now.Add(11 * time.Minute)
	r, s = introspectionRequest(t, "tok")
	if err := a.Authenticate(r, s); !errors.Is(err, pipeline.ErrUnauthorized) {
		t.Errorf("after the cache ttl a revoked token = %v, want 401", err)
	}

	// The cache never outlives the token: exp in 5s, ttl 10m.
	as.issue("short", activeToken("bob", now.Add(5*time.Second), nil))
	r, s = introspectionRequest(t, "short")
	if err := a.Authenticate(r, s); err != nil {
		t.Fatal(err)
	}
	before := as.introspects.Load()
	now = now.Add(6 * time.Second)
	r, s = introspectionRequest(t, "short")
	if err := a.Authenticate(r, s); !errors.Is(err, pipeline.ErrUnauthorized) {
		t.Errorf("expired token = %v, want 401", err)
	}
	if as.introspects.Load() == before {
		t.Error("a cached answer was used past the token's exp")
	}
}

func TestIntrospectionClientCredentials(t *testing.T) {
	as := newAuthServer(t)
	as.requireClient = true
	as.issue("tok", activeToken("alice", time.Now().Add(time.Hour), nil))
	cfg := map[string]any{
		"introspection_url": as.URL + "/oauth2/introspect",
		"pre_authorization": map[string]any{"enabled": true, "client_id": "portcullis", "client_secret": "s3cret", "token_url": as.URL + "/oauth2/token", "scope": []string{"introspect"}},
	}
	a, _ := newIntrospection(t, cfg)
	for i := 0; i < 3; i++ {
		r, s := introspectionRequest(t, "tok")
		if err := a.Authenticate(r, s); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	if n := as.grants.Load(); n != 1 {
		t.Errorf("client credentials fetched %d times, want 1", n)
	}
	// The authorization server forgets the client token: one new grant.
	as.mu.Lock()
	as.clientToken = "rotated"
	as.mu.Unlock()
	r, s := introspectionRequest(t, "tok")
	if err := a.Authenticate(r, s); err != nil {
		t.Fatalf("after client token rotation: %v", err)
	}
	if n := as.grants.Load(); n != 2 {
		t.Errorf("client credentials fetched %d times, want 2", n)
	}

	// Wrong client secret: the grant fails, the request is denied with 503.
	cfg["pre_authorization"].(map[string]any)["client_secret"] = "wrong"
	bad, _ := newIntrospection(t, cfg)
	r, s = introspectionRequest(t, "tok")
	err := bad.Authenticate(r, s)
	if !errors.Is(err, pipeline.ErrServiceUnavailable) {
		t.Errorf("bad client credentials: %v, want 503", err)
	}
	if err != nil && strings.Contains(err.Error(), "wrong") {
		t.Error("the error reveals the client secret")
	}
}

func TestIntrospectionFailsClosed(t *testing.T) {
	closed := faultinject.RefusingURL(t)
	// Fault injector: accepts and never answers.
	hang := faultinject.Hanging(t)
	failing := newAuthServer(t)
	failing.status = http.StatusInternalServerError

	for name, u := range map[string]string{
		"closed port":   closed + "/introspect",
		"never answers": "http://" + hang + "/introspect",
		"5xx":           failing.URL + "/oauth2/introspect",
	} {
		a, _ := newIntrospection(t, map[string]any{"introspection_url": u, "timeout": "100ms", "cache": map[string]any{"enabled": true}})
		r, s := introspectionRequest(t, "secret-token")
		err := a.Authenticate(r, s)
		if !errors.Is(err, pipeline.ErrServiceUnavailable) {
			t.Errorf("%s: %v, want 503", name, err)
		}
		if err != nil && strings.Contains(err.Error(), "secret-token") {
			t.Errorf("%s: error reveals the token", name)
		}
	}
}

func TestIntrospectionConfigErrors(t *testing.T) {
	b := handlertest.Enable(t, pipeline.SharedFactory(NewOAuth2Introspection), nil, handlertest.Deps(t))
	for name, cfg := range map[string]map[string]any{
		"no url":             {},
		"bad url":            {"introspection_url": "file:///x"},
		"unknown strategy":   {"introspection_url": "http://127.0.0.1:1", "scope_strategy": "fuzzy"},
		"pre-auth no secret": {"introspection_url": "http://127.0.0.1:1", "pre_authorization": map[string]any{"enabled": true, "client_id": "x", "token_url": "http://127.0.0.1:1"}},
		"per-rule max_cost":  {"introspection_url": "http://127.0.0.1:1", "cache": map[string]any{"max_cost": 5}},
		"unknown key":        {"introspection_url": "http://127.0.0.1:1", "introspect_url": "x"},
	} {
		if _, err := b.Build(handlertest.JSON(t, cfg)); err == nil {
			t.Errorf("%s: Build must fail", name)
		}
	}
}
