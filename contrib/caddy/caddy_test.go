//go:build linux

// Package caddy_test runs a real Caddy (Debian's caddy package) with the
// shipped Caddyfile in front of a real upstream, asking a real portcullis
// (in-process, on loopback) for every decision through forward_auth, with
// identities from a real Ory Kratos.
package caddy_test

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

var kratos = &kratostest.Shared{}

func TestMain(m *testing.M) { kratostest.RunMain(m, kratos) }

// caddyBinary finds caddy; scripts/install-test-deps.sh installs it.
func caddyBinary(t *testing.T) string {
	if path, err := exec.LookPath("caddy"); err == nil {
		return path
	}
	if os.Getenv("CI") != "" {
		t.Fatal("caddy is not installed (scripts/install-test-deps.sh installs it)")
	}
	t.Skip("caddy is not installed: run scripts/install-test-deps.sh")
	return ""
}

// seen is what the upstream reports about a request it received.
type seen struct {
	Path   string      `json:"path"`
	Header http.Header `json:"header"`
}

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

const configTemplate = `
serve:
  proxy: {host: 127.0.0.1, port: 0}
  api: {host: 127.0.0.1, port: 0}
  prometheus: {port: -1}
access_rules:
  repositories: ["file://%s"]
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

func TestCaddyForwardAuth(t *testing.T) {
	bin := caddyBinary(t)
	k := kratos.Get(t)

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

	apiAddr := startPortcullis(t, k.WhoamiURL())
	base := "http://" + startCaddy(t, bin, apiAddr, strings.TrimPrefix(upstream.URL, "http://"))
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
		for _, tc := range []struct {
			path   string
			header map[string]string
			want   int
		}{
			{"/me", nil, http.StatusUnauthorized},
			{"/me", map[string]string{"Authorization": "Bearer ory_st_invalid"}, http.StatusUnauthorized},
			{"/admin/users", nil, http.StatusForbidden},
			// Caddy passes the path on as the client wrote it, so the
			// decision API refuses what the application might resolve
			// differently.
			{"/public/%2e%2e/admin", nil, http.StatusBadRequest},
			{"/public/../admin", nil, http.StatusBadRequest},
			{"//admin", nil, http.StatusBadRequest},
			{"/public/%2E%2E/%2E%2E/admin", nil, http.StatusBadRequest},
			{"/public/x%2fadmin", nil, http.StatusBadRequest},
			{"/%70ublic/x", nil, http.StatusBadRequest},
			{"/public/..;/admin", nil, http.StatusBadRequest},
			{"/public/..%5cadmin", nil, http.StatusBadRequest},
			{"/nowhere", nil, http.StatusNotFound},
		} {
			if res, _ := get(t, tc.path, tc.header); res.StatusCode != tc.want {
				t.Errorf("GET %s: status %d, want %d", tc.path, res.StatusCode, tc.want)
			}
		}
		if n := hitCount() - before; n != 0 {
			t.Errorf("the upstream received %d denied requests", n)
		}
	})
}

// startPortcullis runs portcullis in-process on loopback with the rules
// above and returns the API listener's address.
func startPortcullis(t *testing.T, whoami string) string {
	t.Helper()
	dir := t.TempDir()
	rulesFile := filepath.Join(dir, "access-rules.yml")
	if err := os.WriteFile(rulesFile, []byte(rules), 0o600); err != nil {
		t.Fatal(err)
	}
	cfgFile := filepath.Join(dir, "portcullis.yml")
	if err := os.WriteFile(cfgFile, []byte(fmt.Sprintf(configTemplate, rulesFile, whoami)), 0o600); err != nil {
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

// startCaddy runs caddy with the shipped Caddyfile (its addresses replaced
// by the test's) and returns its address; caddy is stopped when the test
// ends. Its state goes to a temporary directory.
func startCaddy(t *testing.T, bin, apiAddr, upstreamAddr string) string {
	t.Helper()
	shipped, err := os.ReadFile("Caddyfile")
	if err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	conf := string(shipped)
	for old, repl := range map[string]string{
		"forward_auth 127.0.0.1:4456 {": "forward_auth " + apiAddr + " {",
		"reverse_proxy 127.0.0.1:8080":  "reverse_proxy " + upstreamAddr,
		"\n:8000 {":                     fmt.Sprintf("\nhttp://127.0.0.1:%d {", port),
	} {
		if !strings.Contains(conf, old) {
			t.Fatalf("Caddyfile no longer contains %q", old)
		}
		conf = strings.Replace(conf, old, repl, 1)
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(file, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	out := &syncBuffer{}
	cmd := exec.Command(bin, "run", "--config", file, "--adapter", "caddyfile")
	cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_DATA_HOME="+dir, "XDG_CONFIG_HOME="+dir)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM) // graceful stop of the caddy we started
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("caddy output:\n%s", out.String())
		}
	})
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return addr
		}
		select {
		case err := <-exited:
			t.Fatalf("caddy exited: %v\n%s", err, out.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("caddy did not listen on %s\n%s", addr, out.String())
		}
	}
}

// syncBuffer collects caddy's output while it runs.
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

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
