package authenticators

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portcullis-proxy/portcullis/pipeline"
	"github.com/portcullis-proxy/portcullis/testsupport/handlertest"
	"github.com/portcullis-proxy/portcullis/testsupport/testkeys"
)

// realmIntrospection is a real introspection endpoint that says a token is
// active only for the realm the caller names in X-Realm (as an
// authorization server with one client per audience would).
func realmIntrospection(t *testing.T, realm string) (*httptest.Server, *atomic.Int32) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		ans := map[string]any{"active": false}
		if r.Header.Get("X-Realm") == realm && r.FormValue("token") == "tok-1" {
			ans = map[string]any{"active": true, "sub": "user-1", "exp": time.Now().Add(time.Hour).Unix()}
		}
		json.NewEncoder(w).Encode(ans)
	}))
	t.Cleanup(srv.Close)
	return srv, &calls
}

// TestIntrospectionCacheKeyedByRuleConfig: the introspection cache is
// shared by every rule (one builder), yet a token that rule A's
// introspection (its introspection_request_headers) found active is not
// admitted on rule B, whose introspection says inactive — nor the other
// way round.
func TestIntrospectionCacheKeyedByRuleConfig(t *testing.T) {
	srv, calls := realmIntrospection(t, "a")
	b, err := pipeline.SharedFactory(NewOAuth2Introspection)(nil, handlertest.Deps(t))
	if err != nil {
		t.Fatal(err)
	}
	build := func(realm string) pipeline.Authenticator {
		a, err := b.Build(handlertest.JSON(t, map[string]any{
			"introspection_url":             srv.URL,
			"introspection_request_headers": map[string]string{"X-Realm": realm},
			"cache":                         map[string]any{"enabled": true, "ttl": "10m"},
		}))
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	ruleA, ruleB := build("a"), build("b")
	run := func(a pipeline.Authenticator) error {
		r, s := introspectionRequest(t, "tok-1")
		return a.Authenticate(r, s)
	}
	if err := run(ruleA); err != nil {
		t.Fatalf("rule A: %v, want admitted", err)
	}
	if err := run(ruleA); err != nil || calls.Load() != 1 {
		t.Fatalf("rule A again: %v after %d calls, want admitted from the cache", err, calls.Load())
	}
	if err := run(ruleB); pipeline.StatusOf(err) != http.StatusUnauthorized {
		t.Errorf("rule B = %v, want 401: rule A's cached answer must not decide for rule B", err)
	}
	if calls.Load() != 2 {
		t.Errorf("introspected %d times, want 2 (rule B asks its own)", calls.Load())
	}
}

// TestSessionCacheKeyedByConfig: two cookie_session checkers that differ
// only in additional_headers (the session store answers per header) never
// share an answer for the same cookie.
func TestSessionCacheKeyedByConfig(t *testing.T) {
	store := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]any{"identity": map[string]any{"id": "user-of-" + r.Header.Get("X-Tenant")}})
	}))
	t.Cleanup(store.Close)
	build := func(tenant string) pipeline.Authenticator {
		a, err := pipeline.TypedFactory(NewCookieSession)(nil, handlertest.Deps(t))
		if err != nil {
			t.Fatal(err)
		}
		auth, err := a.Build(handlertest.JSON(t, map[string]any{
			"check_session_url":  store.URL + "/session",
			"preserve_path":      true,
			"subject_from":       "identity.id",
			"additional_headers": map[string]string{"X-Tenant": tenant},
			"cache":              map[string]any{"enabled": true, "ttl": "10m"},
		}))
		if err != nil {
			t.Fatal(err)
		}
		return auth
	}
	for _, tenant := range []string{"a", "b"} {
		auth := build(tenant)
		r, s := jwtRequest(t, "http://gw.test/x")
		r.Header.Set("Cookie", "sid=same")
		if err := auth.Authenticate(r, s); err != nil {
			t.Fatal(err)
		}
		if s.Subject != "user-of-"+tenant {
			t.Errorf("tenant %s: subject %q, want user-of-%s", tenant, s.Subject, tenant)
		}
	}
	// One checker's key changes with its configuration even for the same
	// request: equal inputs under different configurations never collide.
	c1, err := newSessionChecker("cookie_session", &SessionCheckConfig{CheckSessionURL: store.URL, SubjectFrom: "a"}, "Cookie", handlertest.Deps(t))
	if err != nil {
		t.Fatal(err)
	}
	c2, err := newSessionChecker("cookie_session", &SessionCheckConfig{CheckSessionURL: store.URL, SubjectFrom: "b"}, "Cookie", handlertest.Deps(t))
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest(http.MethodGet, "http://gw.test/x", nil)
	in1, in2 := c1.input(r, "sid=same", ""), c2.input(r, "sid=same", "")
	if in1.key() == in2.key() {
		t.Error("checkers differing in subject_from share a cache key")
	}
}

// TestJWKSCacheKeyedByLocation: key sets are cached once per location and
// shared by the rules naming it; a rule never verifies with a set it does
// not name, though another rule's set is cached in the same registry.
func TestJWKSCacheKeyedByLocation(t *testing.T) {
	kA, kB := testkeys.RSA(t, "a"), testkeys.RSA(t, "b")
	setA, setB := newJWKSServer(t, kA), newJWKSServer(t, kB)
	b, err := pipeline.SharedFactory(NewJWT)(nil, handlertest.Deps(t))
	if err != nil {
		t.Fatal(err)
	}
	build := func(u string) pipeline.Authenticator {
		a, err := b.Build(handlertest.JSON(t, map[string]any{"jwks_urls": []string{u}}))
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	ruleA, ruleB := build(setA.URL), build(setB.URL)
	tok := testkeys.Sign(t, kA, claimsFor("user-1", time.Now().Add(time.Hour), nil), false)
	auth := func(a pipeline.Authenticator) error {
		r, s := jwtRequest(t, "http://gw.test/x")
		r.Header.Set("Authorization", "Bearer "+tok)
		return a.Authenticate(r, s)
	}
	if err := auth(ruleA); err != nil {
		t.Fatalf("rule A: %v, want admitted", err)
	}
	if err := auth(ruleB); pipeline.StatusOf(err) != http.StatusUnauthorized {
		t.Errorf("rule B = %v, want 401: it names only set B", err)
	}
}
