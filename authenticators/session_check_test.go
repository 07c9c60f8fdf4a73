package authenticators

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portcullis-proxy/portcullis/pipeline"
	"github.com/portcullis-proxy/portcullis/testsupport/handlertest"
	"github.com/portcullis-proxy/portcullis/testsupport/kratostest"

	"github.com/portcullis-proxy/portcullis/testsupport/faultinject"
)

// kratosShared is the real Ory Kratos this package's session tests talk to.
var kratosShared = &kratostest.Shared{}

func TestMain(m *testing.M) { kratostest.RunMain(m, kratosShared) }

// buildSession builds a session authenticator from a rule config.
func buildSession(tb testing.TB, f pipeline.Factory[pipeline.Authenticator], cfg map[string]any) pipeline.Authenticator {
	tb.Helper()
	// The sessions the tests check are Kratos's: their subject is the
	// identity's id (the default, "subject", is Oathkeeper's).
	if _, set := cfg["subject_from"]; !set {
		cfg["subject_from"] = "identity.id"
	}
	raw, err := json.Marshal(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	b, err := f(nil, handlertest.Deps(tb))
	if err != nil {
		tb.Fatal(err)
	}
	a, err := b.Build(raw)
	if err != nil {
		tb.Fatalf("build %s: %v", raw, err)
	}
	return a
}

// checkerOf returns the session checker inside a session authenticator.
func checkerOf(a pipeline.Authenticator) *sessionChecker {
	switch a := a.(type) {
	case *cookieSession:
		return a.checker
	case *bearerToken:
		return a.checker
	}
	panic("not a session authenticator")
}

// sessionRequest is a request to a protected URL and its fresh session.
func sessionRequest(rawURL string, prep func(r *http.Request)) (*http.Request, *pipeline.Session) {
	r := httptest.NewRequest(http.MethodGet, rawURL, nil)
	if prep != nil {
		prep(r)
	}
	return r, pipeline.NewSession(r, r.URL, nil)
}

// authenticate runs a on a fresh request prepared by prep.
func authenticate(a pipeline.Authenticator, prep func(r *http.Request)) (*pipeline.Session, error) {
	r, s := sessionRequest("http://app.test/resource?x=1", prep)
	return s, a.Authenticate(r, s)
}

// testClock is a settable clock for the session cache.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func newTestClock() *testClock { return &testClock{now: time.Now()} }

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// sessionFront is a fault injector between an authenticator and Kratos: a
// reverse proxy that counts the checks it relays, records the last one, and
// can be told to answer a status of its own instead of relaying. With
// toWhoami it relays every path to /sessions/whoami, turning Kratos into a
// plain session store for Oathkeeper's HTTP semantics.
type sessionFront struct {
	*httptest.Server
	calls    atomic.Int64
	failWith atomic.Int32
	// hold, when set before use, makes every relay wait until it is closed.
	hold chan struct{}

	mu   sync.Mutex
	last *http.Request
}

func newSessionFront(t testing.TB, k *kratostest.Kratos, toWhoami bool) *sessionFront {
	target, _ := url.Parse(k.PublicURL())
	f := &sessionFront{}
	rp := &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
		pr.SetURL(target)
		if toWhoami {
			pr.Out.URL.Path, pr.Out.URL.RawPath = "/sessions/whoami", ""
		}
		pr.Out.Method = http.MethodGet
	}}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.calls.Add(1)
		f.mu.Lock()
		f.last = r.Clone(context.Background())
		f.mu.Unlock()
		if f.hold != nil {
			<-f.hold
		}
		if code := f.failWith.Load(); code != 0 {
			http.Error(w, "injected failure", int(code))
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *sessionFront) lastRequest() *http.Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.last
}

// newHangingServer is a fault injector: it accepts connections and never
// answers, like an identity provider stuck under load.
func newHangingServer(t testing.TB) string {
	return faultinject.HangingURL(t)
}

// wantStatus checks that err is a pipeline error with the status.
func wantStatus(t *testing.T, what string, err error, status int) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: admitted, want status %d", what, status)
	}
	if got := pipeline.StatusOf(err); got != status {
		t.Fatalf("%s: status %d (%v), want %d", what, got, err, status)
	}
}

// noCredentialLeak checks that an error does not carry the credential.
func noCredentialLeak(t *testing.T, err error, secret string) {
	t.Helper()
	if err != nil && secret != "" && strings.Contains(err.Error(), secret) {
		t.Errorf("error %q contains the credential", err)
	}
}

func TestSessionCheckConfigErrors(t *testing.T) {
	cases := []struct {
		name string
		f    pipeline.Factory[pipeline.Authenticator]
		cfg  string
		want string
	}{
		{"missing url", pipeline.TypedFactory(NewCookieSession), `{}`, "check_session_url"},
		{"relative url", pipeline.TypedFactory(NewCookieSession), `{"check_session_url":"/sessions/whoami"}`, "check_session_url"},
		{"unknown key", pipeline.TypedFactory(NewCookieSession), `{"check_session_url":"http://k/sessions/whoami","preserve_pth":true}`, "preserve_pth"},
		{"zero timeout", pipeline.TypedFactory(NewBearerToken), `{"check_session_url":"http://k/sessions/whoami","timeout":"0s"}`, "timeout"},
		{"bad timeout", pipeline.TypedFactory(NewBearerToken), `{"check_session_url":"http://k/sessions/whoami","timeout":"soon"}`, "duration"},
		{"zero ttl", pipeline.TypedFactory(NewCookieSession), `{"check_session_url":"http://k/sessions/whoami","cache":{"ttl":"0s"}}`, "cache.ttl"},
		{"zero max entries", pipeline.TypedFactory(NewCookieSession), `{"check_session_url":"http://k/sessions/whoami","cache":{"max_entries":0}}`, "cache.max_entries"},
		{"two token places", pipeline.TypedFactory(NewBearerToken), `{"check_session_url":"http://k/sessions/whoami","token_from":{"header":"X-T","query_parameter":"t"}}`, "token_from"},
		{"header and websocket", pipeline.TypedFactory(NewBearerToken), `{"check_session_url":"http://k/sessions/whoami","token_from":{"cookie":"c","websocket_protocol":"p."}}`, "token_from"},
		{"empty subject_from", pipeline.TypedFactory(NewCookieSession), `{"check_session_url":"http://k/sessions/whoami","subject_from":""}`, "subject_from"},
	}
	for _, tc := range cases {
		b, err := tc.f(nil, handlertest.Deps(t))
		if err != nil {
			t.Fatal(err)
		}
		_, err = b.Build(json.RawMessage(tc.cfg))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Build(%s) error = %v, want one naming %q", tc.name, tc.cfg, err, tc.want)
		}
	}
	// A disabled cache needs no ttl.
	b, _ := pipeline.TypedFactory(NewCookieSession)(nil, handlertest.Deps(t))
	if _, err := b.Build(json.RawMessage(`{"check_session_url":"http://k/sessions/whoami","cache":{"enabled":false,"ttl":"0s"}}`)); err != nil {
		t.Errorf("disabled cache with zero ttl: %v", err)
	}
}

func TestKratosBase(t *testing.T) {
	cases := []struct {
		url, force string
		base       string
		ok         bool
	}{
		{"http://127.0.0.1:4433/sessions/whoami", "", "http://127.0.0.1:4433", true},
		{"http://127.0.0.1:4433/sessions/whoami/", "GET", "http://127.0.0.1:4433", true},
		{"https://id.example/kratos/sessions/whoami", "", "https://id.example/kratos", true},
		{"http://k/sessions/whoami", "POST", "", false},
		{"http://k/sessions/whoami?tokenize_as=jwt", "", "", false},
		{"http://k/session/check", "", "", false},
	}
	for _, tc := range cases {
		u, _ := url.Parse(tc.url)
		base, ok := kratosBase(u, tc.force)
		if base != tc.base || ok != tc.ok {
			t.Errorf("kratosBase(%q, %q) = %q, %v; want %q, %v", tc.url, tc.force, base, ok, tc.base, tc.ok)
		}
	}
}

// TestPlainSessionStore covers Oathkeeper's HTTP semantics with a store
// that is not a Kratos whoami URL: Kratos behind a front that relays every
// path to whoami and records what it was sent.
func TestPlainSessionStore(t *testing.T) {
	k := kratosShared.Get(t)
	id := k.RegisterBrowser(t)
	front := newSessionFront(t, k, true)

	cases := []struct {
		name      string
		cfg       map[string]any
		method    string
		wantPath  string
		wantQuery string
		wantMeth  string
		wantHdr   map[string]string
	}{
		{
			name:     "path and query replaced by the request's",
			cfg:      map[string]any{"check_session_url": front.URL + "/check?store=1", "preserve_query": false},
			method:   http.MethodPost,
			wantPath: "/resource", wantQuery: "x=1", wantMeth: http.MethodPost,
		},
		{
			name: "path and query preserved, method forced, headers",
			cfg: map[string]any{
				"check_session_url":    front.URL + "/check?store=1",
				"preserve_path":        true,
				"preserve_query":       true,
				"preserve_host":        true,
				"force_method":         "get",
				"forward_http_headers": []string{"X-Trace"},
				"additional_headers":   map[string]string{"X-Store-Key": "k1"},
			},
			method:   http.MethodPut,
			wantPath: "/check", wantQuery: "store=1", wantMeth: http.MethodGet,
			wantHdr: map[string]string{"X-Trace": "t-1", "X-Store-Key": "k1", "X-Forwarded-Host": "app.test"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg["extra_from"] = "@this"
			tc.cfg["cache"] = map[string]any{"enabled": false}
			a := buildSession(t, pipeline.TypedFactory(NewCookieSession), tc.cfg)
			r, s := sessionRequest("http://app.test/resource?x=1", func(r *http.Request) {
				r.AddCookie(id.Cookie)
				r.Header.Set("X-Trace", "t-1")
				r.Header.Set("X-Not-Forwarded", "secret")
			})
			r.Method = tc.method
			if err := a.Authenticate(r, s); err != nil {
				t.Fatalf("Authenticate: %v", err)
			}
			if s.Subject != id.IdentityID {
				t.Errorf("Subject = %q, want %q", s.Subject, id.IdentityID)
			}
			if s.ExpiresAt.IsZero() || s.ExpiresAt.Sub(id.ExpiresAt).Abs() > time.Second {
				t.Errorf("ExpiresAt = %v, want %v (from the document)", s.ExpiresAt, id.ExpiresAt)
			}
			got := front.lastRequest()
			if got.URL.Path != tc.wantPath || got.URL.RawQuery != tc.wantQuery || got.Method != tc.wantMeth {
				t.Errorf("store saw %s %s?%s, want %s %s?%s", got.Method, got.URL.Path, got.URL.RawQuery, tc.wantMeth, tc.wantPath, tc.wantQuery)
			}
			for k, v := range tc.wantHdr {
				if got.Header.Get(k) != v {
					t.Errorf("store saw %s = %q, want %q", k, got.Header.Get(k), v)
				}
			}
			if got.Header.Get("X-Not-Forwarded") != "" {
				t.Error("a header not listed in forward_http_headers reached the store")
			}
			if got.Header.Get("Cookie") != id.CookieHeader() {
				t.Error("the session cookie did not reach the store")
			}
		})
	}

	t.Run("non-200 answers", func(t *testing.T) {
		a := buildSession(t, pipeline.TypedFactory(NewCookieSession), map[string]any{
			"check_session_url": front.URL + "/check", "preserve_path": true,
			"cache": map[string]any{"enabled": false},
		})
		for _, tc := range []struct{ inject, want int }{
			{http.StatusNotFound, http.StatusUnauthorized},
			{http.StatusForbidden, http.StatusUnauthorized},
			{http.StatusInternalServerError, http.StatusServiceUnavailable},
			{http.StatusBadGateway, http.StatusServiceUnavailable},
			{http.StatusTooManyRequests, http.StatusServiceUnavailable},
		} {
			front.failWith.Store(int32(tc.inject))
			_, err := authenticate(a, func(r *http.Request) { r.AddCookie(id.Cookie) })
			wantStatus(t, http.StatusText(tc.inject), err, tc.want)
			noCredentialLeak(t, err, id.Cookie.Value)
		}
		front.failWith.Store(0)
	})
}

// TestBearerPlainStoreGetsAuthorization checks that a token found outside
// the Authorization header still reaches a plain store as a Bearer token.
func TestBearerPlainStoreGetsAuthorization(t *testing.T) {
	k := kratosShared.Get(t)
	id := k.RegisterAPI(t)
	front := newSessionFront(t, k, true)
	a := buildSession(t, pipeline.TypedFactory(NewBearerToken), map[string]any{
		"check_session_url": front.URL + "/check",
		"preserve_path":     true,
		"token_from":        map[string]any{"cookie": "tok"},
	})
	s, err := authenticate(a, func(r *http.Request) { r.AddCookie(&http.Cookie{Name: "tok", Value: id.SessionToken}) })
	if err != nil {
		t.Fatalf("Authenticate: %v", err)
	}
	if s.Subject != id.IdentityID {
		t.Errorf("Subject = %q, want %q", s.Subject, id.IdentityID)
	}
	if got := front.lastRequest().Header.Get("Authorization"); got != "Bearer "+id.SessionToken {
		t.Error("the store did not receive the token as Authorization: Bearer")
	}
}

// TestBearerPlainStoreGetsAuthorizationAsWritten: a token read from the
// Authorization header reaches a plain store as the client wrote it,
// scheme case included (Oathkeeper forwards the header unchanged).
func TestBearerPlainStoreGetsAuthorizationAsWritten(t *testing.T) {
	k := kratosShared.Get(t)
	id := k.RegisterAPI(t)
	front := newSessionFront(t, k, true)
	a := buildSession(t, pipeline.TypedFactory(NewBearerToken), map[string]any{"check_session_url": front.URL + "/check", "preserve_path": true})
	if _, err := authenticate(a, func(r *http.Request) { r.Header.Set("Authorization", "bearer "+id.SessionToken) }); err != nil {
		t.Fatalf("Authenticate: %v", err)
	}
	if got := front.lastRequest().Header.Get("Authorization"); got != "bearer "+id.SessionToken {
		t.Error("the store did not receive the Authorization header as the client wrote it")
	}
}

// TestPlainStoreEmptyAnswerAdmits: a store answering 200 with no body
// vouches for the credential; as in Oathkeeper the session has an empty
// subject.
func TestPlainStoreEmptyAnswerAdmits(t *testing.T) {
	store := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer zyx" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(store.Close)
	a := buildSession(t, pipeline.TypedFactory(NewBearerToken), map[string]any{"check_session_url": store.URL})
	s, err := authenticate(a, func(r *http.Request) { r.Header.Set("Authorization", "Bearer zyx") })
	if err != nil || s.Subject != "" {
		t.Fatalf("Authenticate = %v, subject %q; want admitted with an empty subject", err, s.Subject)
	}
	_, err = authenticate(a, func(r *http.Request) { r.Header.Set("Authorization", "Bearer other") })
	wantStatus(t, "rejected token", err, http.StatusUnauthorized)
}

// TestSubjectAndExtraFrom evaluates GJSON paths over Kratos's session.
func TestSubjectAndExtraFrom(t *testing.T) {
	k := kratosShared.Get(t)
	id := k.RegisterAPI(t)
	cases := []struct {
		name       string
		subject    string
		extra      string
		wantSub    string
		wantExtra  func(map[string]any) bool
		wantStatus int
	}{
		// Oathkeeper's defaults: subject_from "subject", which a Kratos
		// session lacks: an empty subject, admitted.
		{"defaults", "subject", "", "", func(m map[string]any) bool { return len(m) == 0 }, 0},
		{"identity id", "identity.id", "", id.IdentityID, func(m map[string]any) bool { return len(m) == 0 }, 0},
		{"email and traits", "identity.traits.email", "identity.traits", id.Email,
			func(m map[string]any) bool { return m["email"] == id.Email }, 0},
		{"subject not a string", "identity.traits", "", "", nil, http.StatusForbidden},
		{"subject missing", "identity.nope", "", "", func(m map[string]any) bool { return len(m) == 0 }, 0},
		{"extra not an object", "", "identity.id", "", nil, http.StatusForbidden},
	}
	for _, tc := range cases {
		cfg := map[string]any{"check_session_url": k.WhoamiURL()}
		if tc.subject != "" {
			cfg["subject_from"] = tc.subject
		}
		if tc.extra != "" {
			cfg["extra_from"] = tc.extra
		}
		a := buildSession(t, pipeline.TypedFactory(NewBearerToken), cfg)
		s, err := authenticate(a, func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+id.SessionToken) })
		if tc.wantStatus != 0 {
			wantStatus(t, tc.name, err, tc.wantStatus)
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if s.Subject != tc.wantSub || !tc.wantExtra(s.Extra) {
			t.Errorf("%s: Subject = %q, Extra = %v; want %q", tc.name, s.Subject, s.Extra, tc.wantSub)
		}
	}
}

// TestKratosDownFailsClosed: Kratos stopped, hanging or failing never
// admits a request, with or without the cache.
func TestKratosDownFailsClosed(t *testing.T) {
	k := kratostest.Start(t, kratostest.Options{})
	id := k.RegisterBrowser(t)

	t.Run("stopped", func(t *testing.T) {
		cached := buildSession(t, pipeline.TypedFactory(NewCookieSession), map[string]any{"check_session_url": k.WhoamiURL()})
		uncached := buildSession(t, pipeline.TypedFactory(NewCookieSession), map[string]any{"check_session_url": k.WhoamiURL(), "cache": map[string]any{"enabled": false}})
		k.Stop()
		defer func() {
			if err := k.Restart(); err != nil {
				t.Fatal(err)
			}
		}()
		for name, a := range map[string]pipeline.Authenticator{"cached": cached, "uncached": uncached} {
			_, err := authenticate(a, func(r *http.Request) { r.AddCookie(id.Cookie) })
			wantStatus(t, name, err, http.StatusServiceUnavailable)
			noCredentialLeak(t, err, id.Cookie.Value)
			// The failure is not cached: the next request asks again.
			_, err = authenticate(a, func(r *http.Request) { r.AddCookie(id.Cookie) })
			wantStatus(t, name+" again", err, http.StatusServiceUnavailable)
		}
	})

	t.Run("hanging", func(t *testing.T) {
		hang := newHangingServer(t)
		for _, url := range []string{hang + "/sessions/whoami", hang + "/check"} {
			a := buildSession(t, pipeline.TypedFactory(NewCookieSession), map[string]any{
				"check_session_url": url, "preserve_path": true, "timeout": "150ms",
			})
			_, err := authenticate(a, func(r *http.Request) { r.AddCookie(id.Cookie) })
			wantStatus(t, url, err, http.StatusServiceUnavailable)
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("%s: error %v is not the timeout", url, err)
			}
		}
	})

	t.Run("5xx", func(t *testing.T) {
		front := newSessionFront(t, k, false)
		front.failWith.Store(http.StatusInternalServerError)
		a := buildSession(t, pipeline.TypedFactory(NewCookieSession), map[string]any{"check_session_url": front.URL + "/sessions/whoami"})
		_, err := authenticate(a, func(r *http.Request) { r.AddCookie(id.Cookie) })
		wantStatus(t, "kratos 500", err, http.StatusServiceUnavailable)
	})
}

// TestRevalidator re-checks the admitting credential, bypassing the cache.
func TestRevalidator(t *testing.T) {
	k := kratostest.Start(t, kratostest.Options{})
	id := k.RegisterAPI(t)
	a := buildSession(t, pipeline.TypedFactory(NewBearerToken), map[string]any{"check_session_url": k.WhoamiURL()})
	s, err := authenticate(a, func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+id.SessionToken) })
	if err != nil {
		t.Fatal(err)
	}
	if s.Revalidator == nil {
		t.Fatal("no Revalidator")
	}
	now, err := s.Revalidator.Revalidate(context.Background())
	if err != nil || now.ExpiresAt.Sub(id.ExpiresAt).Abs() > time.Second {
		t.Fatalf("Revalidate = %v, %v; want %v, nil", now.ExpiresAt, err, id.ExpiresAt)
	}
	if now.Subject != s.Subject || now.Subject == "" {
		t.Errorf("Revalidate subject = %q, want the admitting session's %q", now.Subject, s.Subject)
	}
	k.RevokeSession(t, id.SessionID)
	_, err = s.Revalidator.Revalidate(context.Background())
	wantStatus(t, "revalidate revoked", err, http.StatusUnauthorized)
	// The rejection also dropped the cache entry: the next request asks
	// Kratos and is denied at once instead of after the ttl.
	_, err = authenticate(a, func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+id.SessionToken) })
	wantStatus(t, "request after revalidation", err, http.StatusUnauthorized)

	k.Stop()
	_, err = s.Revalidator.Revalidate(context.Background())
	wantStatus(t, "revalidate with kratos down", err, http.StatusServiceUnavailable)
}

// TestRevalidatorReadsTheIdentityAgain: what the identity provider says of
// the session now (here an operator's change to the identity's public
// metadata in Kratos) is in the identity Revalidate returns, and the
// admitting session keeps what it was admitted with.
func TestRevalidatorReadsTheIdentityAgain(t *testing.T) {
	k := kratostest.Start(t, kratostest.Options{})
	id := k.RegisterAPI(t)
	a := buildSession(t, pipeline.TypedFactory(NewBearerToken), map[string]any{"check_session_url": k.WhoamiURL(), "extra_from": "identity"})
	s, err := authenticate(a, func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+id.SessionToken) })
	if err != nil {
		t.Fatal(err)
	}
	if role := s.Extra["metadata_public"]; role != nil {
		t.Fatalf("metadata_public before the change = %v, want none", role)
	}
	k.SetMetadataPublic(t, id.IdentityID, map[string]any{"role": "banned"})
	now, err := s.Revalidator.Revalidate(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	meta, _ := now.Extra["metadata_public"].(map[string]any)
	if now.Subject != id.IdentityID || meta["role"] != "banned" {
		t.Errorf("Revalidate = subject %q, metadata_public %v; want %q, role banned", now.Subject, now.Extra["metadata_public"], id.IdentityID)
	}
	if s.Extra["metadata_public"] != nil {
		t.Errorf("the admitting session's extra changed: %v", s.Extra["metadata_public"])
	}
}

// TestConcurrentMissesShareOneCheck: many requests with one fresh credential
// make one Kratos call.
func TestConcurrentMissesShareOneCheck(t *testing.T) {
	k := kratosShared.Get(t)
	id := k.RegisterBrowser(t)
	front := newSessionFront(t, k, false)
	front.hold = make(chan struct{})
	a := buildSession(t, pipeline.TypedFactory(NewCookieSession), map[string]any{
		"check_session_url": front.URL + "/sessions/whoami",
		"only":              []string{kratostest.SessionCookie},
		"cache":             map[string]any{"ttl": "1h"},
	})
	const n = 64
	var wg, started sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Add(1)
		started.Add(1)
		go func() {
			defer wg.Done()
			started.Done()
			s, err := authenticate(a, func(r *http.Request) { r.AddCookie(id.Cookie) })
			if err == nil && s.Subject != id.IdentityID {
				err = errors.New("wrong subject " + s.Subject)
			}
			errs <- err
		}()
	}
	// The first check is held at the front while the others arrive: every
	// request misses the cache, so only the shared flight keeps Kratos from
	// seeing n calls. The pause only gives goroutines time to reach the
	// cache; the assertion does not depend on it.
	started.Wait()
	time.Sleep(100 * time.Millisecond)
	close(front.hold)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := front.calls.Load(); got != 1 {
		t.Errorf("Kratos was called %d times for %d concurrent requests, want 1", got, n)
	}
}

// TestCacheHitSharesTheCheckNotTheRequest: a cache hit is admitted with
// what the miss derived from the credential (the same credential id, never
// the credential itself), while each request keeps an Extra and a
// revalidator of its own — the hit's re-check sends the hit's request, not
// the first one (whose header values change in place here after its
// decision) — and a different token is a different entry.
func TestCacheHitSharesTheCheckNotTheRequest(t *testing.T) {
	var calls atomic.Int32
	var mu sync.Mutex
	var tenants []string
	store := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		mu.Lock()
		tenants = append(tenants, r.Header.Get("X-Tenant"))
		mu.Unlock()
		token := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		json.NewEncoder(w).Encode(map[string]any{"sub": "user-" + token, "extra": map[string]any{"tenant": r.Header.Get("X-Tenant")}})
	}))
	t.Cleanup(store.Close)
	a := buildSession(t, pipeline.TypedFactory(NewBearerToken), map[string]any{
		"check_session_url": store.URL, "subject_from": "sub",
		"forward_http_headers": []string{"X-Tenant"}, "cache": map[string]any{"ttl": "1h"},
	})
	request := func(token string) (*http.Request, *pipeline.Session) {
		r, s := sessionRequest("http://app.test/resource", func(r *http.Request) {
			r.Header.Set("Authorization", "Bearer "+token)
			r.Header.Set("X-Tenant", "blue")
		})
		if err := a.Authenticate(r, s); err != nil {
			t.Fatalf("Authenticate(%s): %v", token, err)
		}
		return r, s
	}
	r1, s1 := request("tok-a")
	r1.Header["X-Tenant"][0] = "red" // in place, after the decision
	_, s2 := request("tok-a")
	if n := calls.Load(); n != 1 {
		t.Fatalf("store called %d times for two requests with one token, want 1 (a hit)", n)
	}
	if want := pipeline.CredentialID("\x00tok-a"); s1.CredentialID != want || s2.CredentialID != want {
		t.Errorf("CredentialID = %q (miss), %q (hit); want %q", s1.CredentialID, s2.CredentialID, want)
	}
	if strings.Contains(s2.CredentialID, "tok-a") {
		t.Error("the credential id carries the token")
	}
	if s2.Subject != "user-tok-a" || s2.Extra["tenant"] != "blue" || s2.Revalidator == nil {
		t.Fatalf("hit = subject %q, extra %v, revalidator %v", s2.Subject, s2.Extra, s2.Revalidator)
	}
	s1.Extra["tenant"] = "tampered"
	if s2.Extra["tenant"] != "blue" {
		t.Error("one request's change to Extra reached another's")
	}
	id, err := s2.Revalidator.Revalidate(context.Background())
	if err != nil || id.Subject != "user-tok-a" {
		t.Fatalf("Revalidate = %q, %v", id.Subject, err)
	}
	mu.Lock()
	got := append([]string(nil), tenants...)
	mu.Unlock()
	if len(got) != 2 || got[1] != "blue" {
		t.Errorf("X-Tenant the store saw = %q, want the re-check to send blue as the first check did", got)
	}
	_, s3 := request("tok-b")
	if n := calls.Load(); n != 3 || s3.Subject != "user-tok-b" || s3.CredentialID == s1.CredentialID {
		t.Errorf("another token: %d calls, subject %q, same credential id %v; want its own check", n, s3.Subject, s3.CredentialID == s1.CredentialID)
	}
}
