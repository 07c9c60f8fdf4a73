package app_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portcullis-proxy/portcullis/testsupport/handlertest"
	"github.com/portcullis-proxy/portcullis/testsupport/servertest"
	"github.com/portcullis-proxy/portcullis/testsupport/testkeys"

	"github.com/portcullis-proxy/portcullis/testsupport/faultinject"
)

// The dependencies fail the way real services fail when they are down,
// overloaded or broken: through the fault injectors of
// testsupport/faultinject, which a real service cannot be made to do on
// demand, and real HTTP servers answering errors.

// statusURL is a real HTTP server answering every request with status and
// body.
func statusURL(t testing.TB, status int, body string) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		io.WriteString(w, body)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// fault is one way a dependency fails.
type fault struct {
	name string
	url  func(t testing.TB) string
}

var faults = []fault{
	{"down", faultinject.RefusingURL},
	{"hanging", faultinject.HangingURL},
	{"500", func(t testing.TB) string { return statusURL(t, 500, `{"error":"boom"}`) }},
	{"503", func(t testing.TB) string { return statusURL(t, 503, "") }},
	{"not HTTP", faultinject.NotHTTPURL},
	{"garbage 200", func(t testing.TB) string { return statusURL(t, 200, "<html>\x00not json{") }},
}

// dependency is a handler that calls out, with the configuration and rule
// that point it at an endpoint, and how a request is sent.
type dependency struct {
	name string
	// config is a template: ENDPOINT is replaced by the faulty endpoint.
	config string
	// rule holds the handlers of the rule that routes every GET to the
	// upstream through the dependency.
	rule handlertest.Rule
	// prepare sets the credential the handler checks.
	prepare func(r *http.Request)
	// allowedOn lists faults the handler treats as an answer rather than a
	// failure (a remote authorizer's 200 allows whatever its body).
	allowedOn map[string]bool
	// timeout is the configured bound on one call.
	timeout time.Duration
}

func dependencies(t *testing.T) []dependency {
	key := testkeys.RSA(t, "k1")
	token := testkeys.Sign(t, key, map[string]any{"sub": "user-1", "exp": 9999999999}, false)
	bearer := func(v string) func(r *http.Request) {
		return func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+v) }
	}
	cookie := func(name, v string) func(r *http.Request) {
		return func(r *http.Request) { r.AddCookie(&http.Cookie{Name: name, Value: v}) }
	}
	const common = `
authorizers: {allow: {enabled: true}}
mutators: {header: {enabled: true, config: {headers: {X-User: "{{ print .Subject }}"}}}}
`
	// authn is the identity service behind the authenticator handler,
	// configured by config (a YAML flow mapping) to wait at most 300ms.
	authn := func(name, handler, config string, prepare func(*http.Request)) dependency {
		return dependency{
			name:    name,
			config:  common + "authenticators: {" + handler + ": {enabled: true, config: " + config + "}}\n",
			rule:    handlertest.Rule{Authenticators: []string{handler}, Mutators: []string{"header"}},
			prepare: prepare,
			timeout: 300 * time.Millisecond,
		}
	}
	return []dependency{
		authn("jwks", "jwt", `{jwks_urls: ["ENDPOINT/.well-known/jwks.json"], jwks_max_wait: 300ms}`, bearer(token)),
		authn("introspection", "oauth2_introspection", `{introspection_url: "ENDPOINT/introspect", timeout: 300ms}`, bearer("opaque-token-0123456789")),
		authn("session store (cookie_session)", "cookie_session", `{check_session_url: "ENDPOINT/sessions/check", timeout: 300ms}`, cookie("session", "s-0123456789")),
		// A URL ending in /sessions/whoami is Kratos: the check goes
		// through the Kratos SDK rather than the plain store.
		authn("Kratos whoami (cookie_session)", "cookie_session", `{check_session_url: "ENDPOINT/sessions/whoami", only: [ory_kratos_session], timeout: 300ms}`, cookie("ory_kratos_session", "s-0123456789")),
		authn("Kratos whoami (bearer_token)", "bearer_token", `{check_session_url: "ENDPOINT/sessions/whoami", timeout: 300ms}`, bearer("ory_st_0123456789")),
		{
			name:      "remote authorizer (remote_json)",
			config:    "authenticators: {anonymous: {enabled: true}}\nmutators: {header: {enabled: true, config: {headers: {X-User: \"{{ print .Subject }}\"}}}}\nauthorizers: {remote_json: {enabled: true, config: {remote: \"ENDPOINT/authorize\", timeout: 300ms, payload: '{\"sub\": {{ .Subject | toJson }}}'}}}\n",
			rule:      handlertest.Rule{Authorizer: "remote_json", Mutators: []string{"header"}},
			prepare:   func(*http.Request) {},
			allowedOn: map[string]bool{"garbage 200": true},
			timeout:   300 * time.Millisecond,
		},
		{
			name:    "hydrator",
			config:  "authenticators: {anonymous: {enabled: true}}\nauthorizers: {allow: {enabled: true}}\nmutators: {hydrator: {enabled: true, config: {api: {url: \"ENDPOINT/hydrate\", timeout: 300ms}}}}\n",
			rule:    handlertest.Rule{Mutators: []string{"hydrator"}},
			prepare: func(*http.Request) {},
			timeout: 300 * time.Millisecond,
		},
	}
}

// TestDependencyFaultsDeny: every identity or decision dependency that is
// down, hanging, failing, or answering garbage makes the proxy and the
// decision API deny the request, within a bound set by the configured
// timeout; nothing reaches the upstream.
func TestDependencyFaultsDeny(t *testing.T) {
	up, hits := countingUpstream(t)
	for _, dep := range dependencies(t) {
		for _, f := range faults {
			t.Run(dep.name+"/"+f.name, func(t *testing.T) {
				endpoint := f.url(t)
				cfg := strings.ReplaceAll(dep.config, "ENDPOINT", endpoint)
				rule := dep.rule
				rule.ID, rule.URL, rule.Upstream = "r", "http://<[^/]+>/<.*>", up.URL
				s := startServer(t, cfg, rule.YAML())
				// The bound: the configured timeout, plus the time a
				// loaded machine may take to notice it.
				bound := dep.timeout + 3*time.Second
				for _, via := range []string{"proxy", "decisions"} {
					before := hits.Load()
					target := s.URL() + "/resource"
					if via == "decisions" {
						target = s.APIURL() + "/decisions/resource"
					}
					req, _ := http.NewRequest("GET", target, nil)
					dep.prepare(req)
					start := time.Now()
					res, err := http.DefaultClient.Do(req)
					if err != nil {
						t.Fatalf("%s: %v", via, err)
					}
					body, _ := io.ReadAll(res.Body)
					res.Body.Close()
					elapsed := time.Since(start)
					t.Logf("%s: %d in %v", via, res.StatusCode, elapsed.Round(time.Millisecond))
					if dep.allowedOn[f.name] {
						if res.StatusCode != http.StatusOK {
							t.Errorf("%s: %d %s, want the 200 the dependency gave", via, res.StatusCode, body)
						}
						continue
					}
					if res.StatusCode < 400 {
						t.Errorf("%s: %d %s: a failing dependency let the request through", via, res.StatusCode, body)
					}
					if via == "proxy" && hits.Load() != before {
						t.Errorf("%s: the request reached the upstream", via)
					}
					if elapsed > bound {
						t.Errorf("%s: denied after %v, beyond the %v timeout (bound %v)", via, elapsed, dep.timeout, bound)
					}
				}
			})
		}
	}
}

// routeTo is the rule id that lets anyone GET /id through to upstream.
func routeTo(id, upstream string) handlertest.Rule {
	return handlertest.Rule{ID: id, URL: "http://<[^/]+>/" + id, Upstream: upstream}
}

// TestRulesRepositoryFaultsKeepLastGood: an http rules repository that
// answers 500, garbage, a body over the size limit or rules that do not
// build leaves the last good rules serving; a good change is applied after
// all of them.
func TestRulesRepositoryFaultsKeepLastGood(t *testing.T) {
	up, _ := countingUpstream(t)
	rulesFor := func(path string) string {
		return routeTo(path, up.URL).YAML()
	}
	var mu sync.Mutex
	mode, polls := "v1", 0
	repo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		m := mode
		polls++
		mu.Unlock()
		switch m {
		case "500":
			http.Error(w, "repository broken", 500)
		case "garbage":
			io.WriteString(w, "{[\x00 this is not a rules document")
		case "not rules":
			io.WriteString(w, "hello: world\n")
		case "does not build":
			// An invalid pattern (an unknown handler would load, as in
			// Oathkeeper, and fail closed on its own rule).
			io.WriteString(w, strings.Replace(rulesFor("v1"), "<[^/]+>", "<(>", 1))
		case "huge":
			// Past the 16 MiB limit, streamed.
			chunk := strings.Repeat("#", 1<<20)
			for i := 0; i < 17; i++ {
				if _, err := io.WriteString(w, chunk); err != nil {
					return
				}
			}
		default:
			io.WriteString(w, rulesFor(m))
		}
	}))
	defer repo.Close()
	s := servertest.Start(t, servertest.Config{YAML: fmt.Sprintf(`
access_rules:
  poll_interval: 20ms
  http_poll_interval: 20ms
  repositories: [%q]
authenticators: {anonymous: {enabled: true}}
authorizers: {allow: {enabled: true}}
mutators: {noop: {enabled: true}}
`, repo.URL+"/rules.yml")})
	status := func(path string) int {
		res, err := http.Get(s.URL() + "/" + path)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	// setMode switches the repository's answer and waits for several polls
	// to have read it.
	setMode := func(m string) {
		mu.Lock()
		mode, polls = m, 0
		mu.Unlock()
		waitUntil(t, func() bool {
			mu.Lock()
			defer mu.Unlock()
			return polls >= 4
		})
	}
	if got := status("v1"); got != 200 {
		t.Fatalf("initial rules: %d", got)
	}
	for _, m := range []string{"500", "garbage", "not rules", "does not build", "huge"} {
		setMode(m)
		if got := status("v1"); got != 200 {
			t.Errorf("repository answering %s: the last good rules stopped serving (%d)", m, got)
		}
	}
	if !strings.Contains(s.Logs(), "the last good rules keep serving") {
		t.Error("the failed reloads were not logged")
	}
	setMode("v2")
	waitUntil(t, func() bool { return status("v2") == 200 })
	if got := status("v1"); got != 404 {
		t.Errorf("after a good change the old rule still answers %d", got)
	}
}

// goroutinesSettle waits until the process is back to at most baseline
// goroutines, failing with the stacks of the rest.
func goroutinesSettle(t *testing.T, baseline int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > baseline {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			n := runtime.Stack(buf, true)
			t.Fatalf("%d goroutines, %d before:\n%s", runtime.NumGoroutine(), baseline, buf[:n])
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestUpstreamFaults: an upstream that refuses connections, resets them,
// or is slower than the response-header timeout gets the client a clean
// 502 or 504 (or, once its answer has begun, a body that ends in an error
// rather than looking complete), and leaves no goroutine behind.
func TestUpstreamFaults(t *testing.T) {
	upstreams := map[string]string{
		"refusing":               faultinject.RefusingURL(t),
		"reset before answering": faultinject.ResettingURL(t, ""),
		"reset mid-answer":       faultinject.ResettingURL(t, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly half of the body"),
		"not HTTP":               faultinject.NotHTTPURL(t),
		"slow":                   faultinject.HangingURL(t),
	}
	var doc strings.Builder
	for name, u := range upstreams {
		id := strings.ReplaceAll(name, " ", "-")
		doc.WriteString(routeTo(id, u).YAML())
	}
	// serve.proxy.timeout.upstream: the default is 60s; a test does not
	// wait that long.
	s := startServer(t, "authenticators: {anonymous: {enabled: true}}\nauthorizers: {allow: {enabled: true}}\nmutators: {noop: {enabled: true}}\n"+
		"serve:\n  proxy: {host: 127.0.0.1, port: 0, timeout: {upstream: 300ms}}\n  api: {host: 127.0.0.1, port: 0}\n  prometheus: {host: 127.0.0.1, port: 0}\n", doc.String())
	client := &http.Client{Transport: &http.Transport{}}
	baseline := runtime.NumGoroutine()

	cases := []struct {
		name   string
		status int
		broken bool // the answer began: its body must end in an error
	}{
		{"refusing", 502, false},
		{"reset before answering", 502, false},
		{"not HTTP", 502, false},
		{"slow", 504, false},
		{"reset mid-answer", 200, true},
	}
	for _, tc := range cases {
		res, err := client.Get(s.URL() + "/" + strings.ReplaceAll(tc.name, " ", "-"))
		if err != nil && tc.broken {
			// The upstream's reset can reach the proxy before the start
			// of its answer does: the client's connection is closed with
			// nothing sent, which is as good.
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		body, err := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != tc.status {
			t.Errorf("%s: %d %s, want %d", tc.name, res.StatusCode, body, tc.status)
		}
		if tc.broken && err == nil {
			t.Errorf("%s: the truncated answer %q reached the client as if complete", tc.name, body)
		}
		if !tc.broken && !strings.HasPrefix(res.Header.Get("Content-Type"), "application/json") {
			t.Errorf("%s: the error is not a JSON document: %q", tc.name, body)
		}
	}
	client.CloseIdleConnections()
	s.App().Proxy.CloseIdleConnections()
	goroutinesSettle(t, baseline)
}
