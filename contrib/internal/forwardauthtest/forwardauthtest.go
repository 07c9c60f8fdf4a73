//go:build linux

package forwardauthtest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portcullis-proxy/portcullis/testsupport/kratostest"
	"github.com/portcullis-proxy/portcullis/testsupport/servertest"
)

// rules are the access rules every gateway is tested with: an anonymous
// rule that sets X-User, one whose mutator sets none (noop answers with the
// request's own headers, so a gateway that copied them would let a spoofed
// identity through), a Kratos-backed rule with a login redirect, and a
// denying rule.
const rules = `
- id: public
  match: {url: "http://<[^/]+>/public/<.*>", methods: [GET, POST]}
  authenticators: [{handler: anonymous}]
  authorizer: {handler: allow}
  mutators: [{handler: header}]
- id: plain
  match: {url: "http://<[^/]+>/plain", methods: [GET]}
  authenticators: [{handler: anonymous}]
  authorizer: {handler: allow}
  mutators: [{handler: noop}]
- id: me
  match: {url: "http://<[^/]+>/me", methods: [GET]}
  authenticators: [{handler: bearer_token}, {handler: cookie_session}]
  authorizer: {handler: allow}
  mutators: [{handler: header}]
  errors: [{handler: redirect}, {handler: json}]
- id: admin
  match: {url: "http://<[^/]+>/admin<.*>", methods: [GET]}
  authenticators: [{handler: anonymous}]
  authorizer: {handler: deny}
  mutators: [{handler: noop}]
`

// config is the configuration every gateway is tested with; %[1]q is
// Kratos's session check URL. servertest adds the listeners and the
// access_rules block that reads the rules.
const config = `
authenticators:
  anonymous: {enabled: true, config: {subject: guest}}
  bearer_token:
    enabled: true
    config: {check_session_url: %[1]q, subject_from: identity.id, cache: {enabled: false}}
  cookie_session:
    enabled: true
    config: {check_session_url: %[1]q, only: [ory_kratos_session], subject_from: identity.id, cache: {enabled: false}}
authorizers: {allow: {enabled: true}, deny: {enabled: true}}
mutators:
  noop: {enabled: true}
  header: {enabled: true, config: {headers: {X-User: "{{ print .Subject }}"}}}
errors:
  fallback: [json]
  handlers:
    json: {enabled: true}
    redirect:
      enabled: true
      config:
        to: https://login.example/
        return_to_query_param: return_to
        when: [{error: [unauthorized], request: {header: {accept: [text/html]}}}]
`

// Denial is one request a gateway must refuse, with the status the client
// gets.
type Denial struct {
	Path   string
	Header map[string]string
	Want   int
}

// denials are the refusals every gateway answers alike, as portcullis
// answers them ([Gateway.Relay] says what the gateway's client gets):
// missing and rejected credentials, the denying rule, no rule, and paths
// whose meaning depends on the parser. Those whose dot or empty segments
// lead to /admin meet the denying rule (403) at a gateway that cleans the
// path before it asks ([Gateway.CleansPath]); as written, the strict
// decision API refuses them (400), as it refuses ";" and "\" segments
// from every gateway.
func denials(cleansPath bool) []Denial {
	dots := http.StatusBadRequest
	if cleansPath {
		dots = http.StatusForbidden
	}
	return []Denial{
		{"/me", nil, http.StatusUnauthorized},
		{"/me", map[string]string{"Authorization": "Bearer ory_st_invalid"}, http.StatusUnauthorized},
		{"/admin/users", nil, http.StatusForbidden},
		{"/nowhere", nil, http.StatusNotFound},
		{"/public/%2e%2e/admin", nil, dots},
		{"/public/../admin", nil, dots},
		{"//admin", nil, dots},
		{"/public/%2E%2E/%2E%2E/admin", nil, dots},
		{"/public/..;/admin", nil, http.StatusBadRequest},
		{"/public/..%5cadmin", nil, http.StatusBadRequest},
	}
}

// Gateway is the proxy under test.
type Gateway struct {
	// Start runs the gateway from its shipped files, pointed at
	// portcullis's API and at the upstream, and returns the address it
	// serves on once it serves; the gateway stops when the test ends.
	Start func(t *testing.T, apiAddr, upstreamAddr string) string
	// Relay is the status the gateway's client gets for d, which
	// portcullis refuses with d.Want (nil: d.Want).
	Relay func(d Denial) int
	// CleansPath says the gateway resolves dot segments and empty
	// segments before it asks portcullis.
	CleansPath bool
	// OwnLogin says the gateway cannot pass portcullis's redirect to the
	// login page on and sends browsers to log in itself (its own test
	// covers that); the shared login check is then left out.
	OwnLogin bool
	// PathConfusion are the gateway's own cases beyond the shared ones,
	// with the status its client gets.
	PathConfusion []Denial
}

// Running is a gateway [Run] tested, still serving for the gateway's own
// checks.
type Running struct {
	// Addr is the gateway's host:port.
	Addr string
	mu   sync.Mutex
	hits []seen
}

// Hits returns how many requests the upstream has received.
func (r *Running) Hits() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.hits)
}

// Since returns the paths of the requests the upstream received after the
// first n.
func (r *Running) Since(n int) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var paths []string
	for _, h := range r.hits[n:] {
		paths = append(paths, h.Path)
	}
	return paths
}

// seen is what the upstream reports about a request it received.
type seen struct {
	Path   string      `json:"path"`
	Header http.Header `json:"header"`
}

// Run tests g in front of a real upstream with portcullis deciding every
// request against the Kratos k: allowed requests carry the identity header
// portcullis set and never the client's, Kratos sessions by token and
// cookie, a login redirect returning to the gateway's URL, and denials and
// path confusion that never reach the upstream. It returns the gateway,
// which serves until the test ends.
func Run(t *testing.T, k *kratostest.Kratos, g Gateway) *Running {
	run := &Running{}
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := seen{Path: r.URL.RequestURI(), Header: r.Header.Clone()}
		run.mu.Lock()
		run.hits = append(run.hits, s)
		run.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(s)
	}))
	t.Cleanup(upstream.Close)

	run.Addr = g.Start(t, StartPortcullis(t, k).Addr("api"), strings.TrimPrefix(upstream.URL, "http://"))
	base := "http://" + run.Addr
	client := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

	get := func(t *testing.T, path string, header map[string]string) (*http.Response, seen) {
		t.Helper()
		req, err := http.NewRequest("GET", base+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		// Send the path exactly as written (an opaque "//x" would be read as
		// a host).
		if p, _, _ := strings.Cut(path, "?"); strings.HasPrefix(p, "//") {
			req.URL.Path = p
		} else {
			req.URL.Opaque = p
		}
		for k, v := range header {
			req.Header.Set(k, v)
		}
		res, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		body, _ := io.ReadAll(res.Body)
		var s seen
		if res.StatusCode == http.StatusOK {
			if err := json.Unmarshal(body, &s); err != nil {
				t.Fatalf("GET %s: not the upstream's answer: %s", path, body)
			}
		}
		return res, s
	}

	t.Run("allowed requests reach the upstream with the identity header", func(t *testing.T) {
		res, s := get(t, "/public/hello?x=1", map[string]string{"X-User": "admin"})
		if res.StatusCode != http.StatusOK {
			t.Fatalf("status %d, want 200", res.StatusCode)
		}
		if s.Path != "/public/hello?x=1" {
			t.Errorf("upstream path %q, want /public/hello?x=1", s.Path)
		}
		if got := s.Header.Values("X-User"); len(got) != 1 || got[0] != "guest" {
			t.Errorf("upstream X-User = %q, want [guest]", got)
		}
	})

	t.Run("a spoofed identity header never passes where no mutator sets one", func(t *testing.T) {
		res, s := get(t, "/plain", map[string]string{"X-User": "admin"})
		if res.StatusCode != http.StatusOK {
			t.Fatalf("status %d, want 200", res.StatusCode)
		}
		if got := s.Header.Values("X-User"); len(got) != 0 {
			t.Errorf("upstream X-User = %q, want none", got)
		}
	})

	t.Run("Kratos sessions become the identity id", func(t *testing.T) {
		id := k.RegisterAPI(t)
		res, s := get(t, "/me", map[string]string{"Authorization": "Bearer " + id.SessionToken, "X-User": "someone-else"})
		if res.StatusCode != http.StatusOK || s.Header.Get("X-User") != id.IdentityID {
			t.Errorf("token: status %d, X-User %q; want 200 and %q", res.StatusCode, s.Header.Get("X-User"), id.IdentityID)
		}
		bid := k.RegisterBrowser(t)
		res, s = get(t, "/me", map[string]string{"Cookie": bid.CookieHeader()})
		if res.StatusCode != http.StatusOK || s.Header.Get("X-User") != bid.IdentityID {
			t.Errorf("cookie: status %d, X-User %q; want 200 and %q", res.StatusCode, s.Header.Get("X-User"), bid.IdentityID)
		}
		k.RevokeSession(t, id.SessionID)
		if res, _ := get(t, "/me", map[string]string{"Authorization": "Bearer " + id.SessionToken}); res.StatusCode != http.StatusUnauthorized {
			t.Errorf("revoked session: status %d, want 401", res.StatusCode)
		}
	})

	if !g.OwnLogin {
		t.Run("a browser without a session is sent to log in and back", func(t *testing.T) {
			res, _ := get(t, "/me?tab=2", map[string]string{"Accept": "text/html"})
			loc, _ := url.Parse(res.Header.Get("Location"))
			if res.StatusCode != http.StatusFound || loc == nil || loc.Host != "login.example" {
				t.Fatalf("status %d, Location %q; want 302 to the login page", res.StatusCode, res.Header.Get("Location"))
			}
			if want := base + "/me?tab=2"; loc.Query().Get("return_to") != want {
				t.Errorf("return_to %q, want %q", loc.Query().Get("return_to"), want)
			}
		})
	}

	t.Run("denials and path confusion never reach the upstream", func(t *testing.T) {
		before := run.Hits()
		cases := denials(g.CleansPath)
		for i := range cases {
			if g.Relay != nil {
				cases[i].Want = g.Relay(cases[i])
			}
		}
		for _, tc := range append(cases, g.PathConfusion...) {
			if res, _ := get(t, tc.Path, tc.Header); res.StatusCode != tc.Want {
				t.Errorf("GET %s: status %d, want %d", tc.Path, res.StatusCode, tc.Want)
			}
		}
		if n := run.Hits() - before; n != 0 {
			t.Errorf("the upstream received %d denied requests: %v", n, run.Since(before))
		}
	})
	return run
}

// StartPortcullis serves the shared rules and configuration against the
// Kratos k, in this process, until the test ends.
func StartPortcullis(t *testing.T, k *kratostest.Kratos) *servertest.Server {
	t.Helper()
	return servertest.Start(t, servertest.Config{YAML: fmt.Sprintf(config, k.WhoamiURL()), Rules: rules})
}

// Installed returns the path of the first of names found (on $PATH or as
// a path), a gateway scripts/install-test-deps.sh installs. Without one
// the test is skipped saying so, or fails where $CI is set.
func Installed(t *testing.T, names ...string) string {
	t.Helper()
	for _, n := range names {
		if path, err := exec.LookPath(n); err == nil {
			return path
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s is not installed (scripts/install-test-deps.sh installs it)", names[0])
	}
	t.Skipf("%s is not installed: run scripts/install-test-deps.sh", names[0])
	return ""
}

// EditFile reads the shipped file name (relative to the test's directory),
// replaces each key of each repl (which must occur) once by its value, and
// writes the result under dir; it returns the written file's path.
func EditFile(t *testing.T, dir, name string, repls ...map[string]string) string {
	t.Helper()
	data, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	conf := string(data)
	for _, repl := range repls {
		for old, new := range repl {
			if !strings.Contains(conf, old) {
				t.Fatalf("%s no longer contains %q", name, old)
			}
			conf = strings.Replace(conf, old, new, 1)
		}
	}
	out := filepath.Join(dir, filepath.Base(name))
	if err := os.WriteFile(out, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	return out
}
