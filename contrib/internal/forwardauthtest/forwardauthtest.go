//go:build linux

package forwardauthtest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/portcullis-proxy/portcullis/config"
	"github.com/portcullis-proxy/portcullis/internal/app"
	"github.com/portcullis-proxy/portcullis/internal/kratostest"
	"github.com/portcullis-proxy/portcullis/internal/registry"
)

// Rules are the access rules every gateway is tested with: an anonymous
// rule that sets X-User, one whose mutator sets none (noop answers with the
// request's own headers, so a gateway that copied them would let a spoofed
// identity through), a Kratos-backed rule with a login redirect, and a
// denying rule.
const Rules = `
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

// Config is the configuration every gateway is tested with, a template for
// [StartPortcullis].
const Config = `
serve:
  proxy: {host: 127.0.0.1, port: 0}
  api: {host: 127.0.0.1, port: 0}
  prometheus: {port: -1}
access_rules:
  repositories: ["file://%[1]s"]
authenticators:
  anonymous: {enabled: true, config: {subject: guest}}
  bearer_token:
    enabled: true
    config: {check_session_url: %[2]q, subject_from: identity.id, cache: {enabled: false}}
  cookie_session:
    enabled: true
    config: {check_session_url: %[2]q, only: [ory_kratos_session], subject_from: identity.id, cache: {enabled: false}}
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

// denials are the refusals every gateway answers alike; a gateway adds its
// own path-confusion cases, whose status depends on whether it normalises
// the path before asking (403 from the rule the clean path reaches) or
// passes it on as written (400 from the strict decision API).
func denials() []Denial {
	return []Denial{
		{"/me", nil, http.StatusUnauthorized},
		{"/me", map[string]string{"Authorization": "Bearer ory_st_invalid"}, http.StatusUnauthorized},
		{"/admin/users", nil, http.StatusForbidden},
		{"/nowhere", nil, http.StatusNotFound},
	}
}

// Gateway is the proxy under test.
type Gateway struct {
	// Start runs the gateway from its shipped files, pointed at
	// portcullis's API and at the upstream, and returns the address it
	// serves on once it serves; the gateway stops when the test ends.
	Start func(t *testing.T, apiAddr, upstreamAddr string) string
	// PathConfusion are the gateway's own path-confusion cases.
	PathConfusion []Denial
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
// path confusion that never reach the upstream.
func Run(t *testing.T, k *kratostest.Kratos, g Gateway) {
	var mu sync.Mutex
	var hits []seen
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := seen{Path: r.URL.RequestURI(), Header: r.Header.Clone()}
		mu.Lock()
		hits = append(hits, s)
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(s)
	}))
	defer upstream.Close()
	hitCount := func() int { mu.Lock(); defer mu.Unlock(); return len(hits) }

	apiAddr := StartPortcullis(t, Rules, Config, k.WhoamiURL())
	base := "http://" + g.Start(t, apiAddr, strings.TrimPrefix(upstream.URL, "http://"))
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

	t.Run("denials and path confusion never reach the upstream", func(t *testing.T) {
		before := hitCount()
		for _, tc := range append(denials(), g.PathConfusion...) {
			if res, _ := get(t, tc.Path, tc.Header); res.StatusCode != tc.Want {
				t.Errorf("GET %s: status %d, want %d", tc.Path, res.StatusCode, tc.Want)
			}
		}
		if n := hitCount() - before; n != 0 {
			t.Errorf("the upstream received %d denied requests", n)
		}
	})
}

// StartPortcullis runs portcullis in-process on loopback with the rules and
// the configuration cfg, a template whose %[1]s is the rules file and whose
// %[2]q is whoami (Kratos's session check URL), and returns the API
// listener's address; it shuts down when the test ends.
func StartPortcullis(t *testing.T, rules, cfg, whoami string) string {
	t.Helper()
	dir := t.TempDir()
	rulesFile := filepath.Join(dir, "access-rules.yml")
	if err := os.WriteFile(rulesFile, []byte(rules), 0o600); err != nil {
		t.Fatal(err)
	}
	cfgFile := filepath.Join(dir, "portcullis.yml")
	if err := os.WriteFile(cfgFile, []byte(fmt.Sprintf(cfg, rulesFile, whoami)), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := config.Load(cfgFile, nil, registry.HandlerNames(registry.NewCatalog()))
	if err != nil {
		t.Fatal(err)
	}
	log := logrus.New()
	log.Out = io.Discard
	srv, err := app.New(c, log)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	srv.Start()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	return srv.Addr("api")
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

// StartProcess starts cmd (its output collected), polls ready every
// interval until it answers true, and fails the test if the process exits
// first or timeout passes. When the test ends the process gets stop (its
// graceful-stop signal), then SIGKILL after 10 s, and its output is logged
// if the test failed.
func StartProcess(t *testing.T, cmd *exec.Cmd, stop os.Signal, ready func() bool, interval, timeout time.Duration) {
	t.Helper()
	name := filepath.Base(cmd.Path)
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Signal(stop)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("%s output:\n%s", name, out.String())
		}
	})
	deadline := time.Now().Add(timeout)
	for !ready() {
		select {
		case err := <-exited:
			t.Fatalf("%s exited: %v\n%s", name, err, out.String())
		case <-time.After(interval):
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s was not ready within %s\n%s", name, timeout, out.String())
		}
	}
}

// Listening reports whether something accepts TCP connections on addr.
func Listening(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// FreePort returns a loopback port that was free a moment ago.
func FreePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// syncBuffer collects a process's output while it runs.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
