package registry_test

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portcullis-proxy/portcullis/config"
	"github.com/portcullis-proxy/portcullis/internal/app"
	"github.com/portcullis-proxy/portcullis/internal/registry"
	"github.com/portcullis-proxy/portcullis/pipeline"
	"github.com/portcullis-proxy/portcullis/testsupport/testkeys"
)

// services is one real https server on loopback standing in for every
// service a handler calls: a session store, a key set, an introspection
// endpoint, a decision API, a policy document, a hydration API and a
// signing key set. It counts the requests each path receives.
type services struct {
	*httptest.Server
	// token is a JWT the key set at /jwks verifies.
	token string
	mu    sync.Mutex
	hits  map[string]int
}

func newServices(t *testing.T) *services {
	signer := testkeys.RSA(t, "k1")
	svc := &services{hits: map[string]int{}}
	mux := http.NewServeMux()
	answer := func(path string, body func() []byte) {
		mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
			svc.mu.Lock()
			svc.hits[path]++
			svc.mu.Unlock()
			w.Header().Set("Content-Type", "application/json")
			w.Write(body())
		})
	}
	jsonOf := func(v any) func() []byte { return func() []byte { b, _ := json.Marshal(v); return b } }
	answer("/sessions/check", jsonOf(map[string]any{"subject": "alice"}))
	answer("/jwks", func() []byte { return testkeys.PublicSet(t, signer) })
	answer("/introspect", func() []byte {
		b, _ := json.Marshal(map[string]any{"active": true, "sub": "alice", "exp": time.Now().Add(time.Hour).Unix(), "token_type": "Bearer"})
		return b
	})
	answer("/allow", jsonOf(map[string]any{}))
	answer("/policies", jsonOf([]map[string]any{{"id": "p", "subjects": []string{"alice"}, "actions": []string{"read"}, "resources": []string{"doc"}, "effect": "allow"}}))
	answer("/hydrate", jsonOf(map[string]any{"subject": "alice", "extra": map[string]any{"hydrated": true}}))
	answer("/signing-keys", func() []byte { return testkeys.Set(t, testkeys.EC(t, "gw")) })
	svc.Server = httptest.NewUnstartedServer(mux)
	// The refused handshakes of the untrusting client are expected.
	svc.Config.ErrorLog = log.New(io.Discard, "", 0)
	svc.StartTLS()
	t.Cleanup(svc.Close)
	svc.token = testkeys.Sign(t, signer, map[string]any{"sub": "alice", "exp": time.Now().Add(time.Hour).Unix()}, false)
	return svc
}

func (s *services) count(path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hits[path]
}

// handlerCall is one handler that calls out: its global and rule config,
// the path it calls and how a request reaches it.
type handlerCall struct {
	kind         pipeline.Kind
	name, path   string
	global, rule map[string]any
	prep         func(r *http.Request, svc *services)
}

func callingHandlers() []handlerCall {
	bearer := func(tok string) func(*http.Request, *services) {
		return func(r *http.Request, svc *services) {
			if tok == "" {
				tok = svc.token
			}
			r.Header.Set("Authorization", "Bearer "+tok)
		}
	}
	return []handlerCall{
		{pipeline.KindAuthenticator, "cookie_session", "/sessions/check", map[string]any{"check_session_url": "/sessions/check", "preserve_path": true}, nil,
			func(r *http.Request, _ *services) { r.Header.Set("Cookie", "sid=1") }},
		{pipeline.KindAuthenticator, "bearer_token", "/sessions/check", map[string]any{"check_session_url": "/sessions/check", "preserve_path": true}, nil, bearer("opaque")},
		{pipeline.KindAuthenticator, "jwt", "/jwks", map[string]any{"jwks_urls": []string{"/jwks"}}, nil, bearer("")},
		{pipeline.KindAuthenticator, "oauth2_introspection", "/introspect", map[string]any{"introspection_url": "/introspect"}, nil, bearer("opaque")},
		{pipeline.KindAuthorizer, "remote", "/allow", map[string]any{"remote": "/allow"}, nil, nil},
		{pipeline.KindAuthorizer, "remote_json", "/allow", map[string]any{"remote": "/allow", "payload": "{}"}, nil, nil},
		{pipeline.KindAuthorizer, "ladon", "/policies", map[string]any{"repositories": []string{"/policies"}},
			map[string]any{"required_action": "read", "required_resource": "doc"}, nil},
		{pipeline.KindMutator, "hydrator", "/hydrate", map[string]any{"api": map[string]any{"url": "/hydrate"}}, nil, nil},
		{pipeline.KindMutator, "id_token", "/signing-keys", map[string]any{"issuer_url": "https://gw.test/", "jwks_url": "/signing-keys"}, nil, nil},
	}
}

// withBase prefixes the config values that are service paths with base.
func withBase(v any, base string) any {
	switch t := v.(type) {
	case string:
		if len(t) > 0 && t[0] == '/' {
			return base + t
		}
	case []string:
		out := make([]string, len(t))
		for i, s := range t {
			out[i] = withBase(s, base).(string)
		}
		return out
	case map[string]any:
		out := map[string]any{}
		for k, x := range t {
			out[k] = withBase(x, base)
		}
		return out
	}
	return v
}

// run enables, builds and runs the handler once with deps.
func (c handlerCall) run(t *testing.T, svc *services, deps pipeline.Deps) error {
	cat := registry.NewCatalog()
	global, _ := json.Marshal(withBase(c.global, svc.URL))
	rule, _ := json.Marshal(c.rule)
	if err := cat.Enable(c.kind, c.name, global, deps); err != nil {
		return err
	}
	r := httptest.NewRequest(http.MethodGet, "http://gw.test/doc", nil)
	if c.prep != nil {
		c.prep(r, svc)
	}
	u, _ := url.Parse(r.URL.String())
	s := pipeline.NewSession(r, u, nil)
	s.Subject = "alice"
	switch c.kind {
	case pipeline.KindAuthenticator:
		a, err := cat.Authenticators.Build(c.name, rule)
		if err != nil {
			return err
		}
		return a.Authenticate(r, s)
	case pipeline.KindAuthorizer:
		a, err := cat.Authorizers.Build(c.name, rule)
		if err != nil {
			return err
		}
		return a.Authorize(r, s)
	default:
		m, err := cat.Mutators.Build(c.name, rule)
		if err != nil {
			return err
		}
		return m.Mutate(r, s)
	}
}

// depsFrom returns what internal/app builds the handlers of the
// configuration document doc with.
func depsFrom(t *testing.T, ctx context.Context, doc string) (pipeline.Deps, error) {
	t.Helper()
	// No environment: the handler names it would address are not needed.
	cfg, err := config.LoadData(t.TempDir()+"/portcullis.yml", []byte(doc), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	return app.HandlerDeps(ctx, cfg, nil)
}

// Every handler that calls out does so with the client it was given in
// Deps, the one built from the configuration's http_client block: with
// http_client.ca_file naming the CA of the services' certificate the call
// is made and succeeds; without it no request reaches the service and the
// handler fails closed; without a client it does not enable or build at
// all. A CA file without certificates is an error at its key's line.
func TestHandlersUseTheClientTheyAreGiven(t *testing.T) {
	svc := newServices(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	ca, empty := t.TempDir()+"/ca.pem", t.TempDir()+"/empty.pem"
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: svc.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(empty, []byte("no certificates here\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	trusting, err := depsFrom(t, ctx, "http_client:\n  ca_file: "+ca+"\n  connect_timeout: 2s\n")
	if err != nil {
		t.Fatal(err)
	}
	untrusting, err := depsFrom(t, ctx, "log: {level: info}\n")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := depsFrom(t, ctx, "log: {level: info}\nhttp_client:\n  ca_file: "+empty+"\n"); err == nil ||
		!strings.Contains(err.Error(), "portcullis.yml:3: http_client.ca_file: no PEM certificates found") {
		t.Errorf("a CA file without certificates: %v", err)
	}
	for _, c := range callingHandlers() {
		before := svc.count(c.path)
		if err := c.run(t, svc, untrusting); err == nil {
			t.Errorf("%s %s: succeeded with a client that does not trust the service", c.kind, c.name)
		} else if st := pipeline.StatusOf(err); st != http.StatusServiceUnavailable && c.name != "ladon" {
			// ladon fails at enable: the first policy load must succeed.
			t.Errorf("%s %s: untrusted service: %v (status %d), want 503", c.kind, c.name, err, st)
		}
		if n := svc.count(c.path); n != before {
			t.Errorf("%s %s: the untrusting client reached %s %d times", c.kind, c.name, c.path, n-before)
		}
		if err := c.run(t, svc, trusting); err != nil {
			t.Errorf("%s %s: with the trusting client: %v", c.kind, c.name, err)
		}
		if svc.count(c.path) == before {
			t.Errorf("%s %s: the trusting client never reached %s", c.kind, c.name, c.path)
		}
		if err := c.run(t, svc, pipeline.Deps{Context: ctx}); !errors.Is(err, pipeline.ErrNoHTTPClient) {
			t.Errorf("%s %s without a client: %v, want ErrNoHTTPClient", c.kind, c.name, err)
		}
	}
}
