//go:build linux

// Package nginx_test runs a real nginx with the shipped portcullis.conf in
// front of a real upstream, asking a real portcullis (in-process, on
// loopback) for every decision, with identities from a real Ory Kratos.
package nginx_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/portcullis-proxy/portcullis/contrib/internal/forwardauthtest"
	"github.com/portcullis-proxy/portcullis/testsupport/kratostest"
)

var kratos = &kratostest.Shared{}

func TestMain(m *testing.M) { kratostest.RunMain(m, kratos) }

// nginxBinary finds nginx; scripts/install-test-deps.sh installs it.
func nginxBinary(t *testing.T) string {
	for _, p := range []string{"nginx", "/usr/sbin/nginx"} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("nginx is not installed (scripts/install-test-deps.sh installs it)")
	}
	t.Skip("nginx is not installed: run scripts/install-test-deps.sh")
	return ""
}

// seen is what the upstream reports about a request it received.
type seen struct {
	Path   string      `json:"path"`
	Header http.Header `json:"header"`
}

const rulesTemplate = `
- id: public
  match: {url: "http://<[^/]+>/public/<.*>", methods: [GET, POST]}
  authenticators: [{handler: anonymous}]
  authorizer: {handler: allow}
  mutators: [{handler: header}]
- id: me
  match: {url: "http://<[^/]+>/me", methods: [GET]}
  authenticators: [{handler: bearer_token}, {handler: cookie_session}]
  authorizer: {handler: allow}
  mutators: [{handler: header}]
- id: admin
  match: {url: "http://<[^/]+>/admin<.*>", methods: [GET]}
  authenticators: [{handler: anonymous}]
  authorizer: {handler: deny}
  mutators: [{handler: noop}]
- id: echo
  match: {url: "http://<[^/]+>/echo/<.*>", methods: [GET]}
  authenticators: [{handler: anonymous}]
  authorizer: {handler: allow}
  mutators: [{handler: noop}]
`

func TestNginxAuthRequest(t *testing.T) {
	bin := nginxBinary(t)
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

	apiAddr := forwardauthtest.StartPortcullis(t, rulesTemplate, forwardauthtest.Config, k.WhoamiURL())
	nginxAddr := startNginx(t, bin, apiAddr, strings.TrimPrefix(upstream.URL, "http://"), nil)
	base := "http://" + nginxAddr

	get := func(path string, header map[string]string) (*http.Response, seen) {
		t.Helper()
		req, _ := http.NewRequest("GET", base+path, nil)
		for k, v := range header {
			req.Header.Set(k, v)
		}
		res, err := http.DefaultClient.Do(req)
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
		// The client tries to spoof the identity header; portcullis's
		// answer replaces it.
		res, s := get("/public/hello?x=1", map[string]string{"X-User": "admin"})
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

	t.Run("a rule that sets no identity header cannot let the client's through", func(t *testing.T) {
		// The noop mutator answers with the request's own headers; the
		// decision subrequest must not carry the client's X-User, or
		// auth_request_set would copy it upstream as if portcullis had set it.
		res, s := get("/echo/x", map[string]string{"X-User": "admin"})
		if res.StatusCode != http.StatusOK {
			t.Fatalf("status %d, want 200", res.StatusCode)
		}
		if got := s.Header.Values("X-User"); len(got) != 0 {
			t.Errorf("upstream X-User = %q, want none", got)
		}
	})

	t.Run("a Kratos session token becomes the identity id", func(t *testing.T) {
		id := k.RegisterAPI(t)
		res, s := get("/me", map[string]string{"Authorization": "Bearer " + id.SessionToken, "X-User": "someone-else"})
		if res.StatusCode != http.StatusOK {
			t.Fatalf("status %d, want 200", res.StatusCode)
		}
		if got := s.Header.Get("X-User"); got != id.IdentityID {
			t.Errorf("upstream X-User = %q, want the identity id %q", got, id.IdentityID)
		}
		// A browser session cookie works the same way.
		bid := k.RegisterBrowser(t)
		res, s = get("/me", map[string]string{"Cookie": bid.CookieHeader()})
		if res.StatusCode != http.StatusOK || s.Header.Get("X-User") != bid.IdentityID {
			t.Errorf("cookie: status %d, X-User %q, want 200 and %q", res.StatusCode, s.Header.Get("X-User"), bid.IdentityID)
		}
		// After the session is revoked in Kratos, the token stops working
		// (the session cache is off in this configuration).
		k.RevokeSession(t, id.SessionID)
		if res, _ := get("/me", map[string]string{"Authorization": "Bearer " + id.SessionToken}); res.StatusCode != http.StatusUnauthorized {
			t.Errorf("revoked session: status %d, want 401", res.StatusCode)
		}
	})

	t.Run("denials pass through and never reach the upstream", func(t *testing.T) {
		mu.Lock()
		before := len(hits)
		mu.Unlock()
		cases := []struct {
			path   string
			header map[string]string
			want   int
		}{
			{"/me", nil, http.StatusUnauthorized}, // no credential
			{"/me", map[string]string{"Authorization": "Bearer ory_st_invalid"}, http.StatusUnauthorized}, // rejected by Kratos
			{"/admin/users", nil, http.StatusForbidden},                                                   // deny authorizer
			// A path whose meaning differs between parsers is refused (400,
			// which auth_request turns into 500), never decided.
			{"/public/%2e%2e/admin", nil, http.StatusInternalServerError},
			// No rule: portcullis answers 404, which auth_request turns
			// into 500 (any status other than 2xx, 401 and 403).
			{"/nowhere", nil, http.StatusInternalServerError},
			// The decision location cannot be called from outside.
			{"/.portcullis/decision", nil, http.StatusNotFound},
		}
		for _, tc := range cases {
			res, _ := get(tc.path, tc.header)
			if res.StatusCode != tc.want {
				t.Errorf("GET %s: status %d, want %d", tc.path, res.StatusCode, tc.want)
			}
		}
		mu.Lock()
		after := len(hits)
		mu.Unlock()
		if after != before {
			t.Errorf("the upstream received %d denied requests", after-before)
		}
	})

	t.Run("paths the application would read otherwise are refused", func(t *testing.T) {
		// The review's two attacks, sent byte for byte: an encoded slash
		// the application routes on raw (/admin/…) while a decoding
		// gateway saw /public/y, and a raw "#" that hides /secret behind
		// /public/x. nginx passes portcullis the same URI it passes the
		// application, and portcullis refuses both with 400.
		mu.Lock()
		before := len(hits)
		mu.Unlock()
		for _, target := range []string{"/admin/..%2fpublic/y", "/admin/..%2Fpublic/y", "/secret#/../public/x", "/admin#/../public/x", "/public/..%5cadmin"} {
			c, err := net.Dial("tcp", nginxAddr)
			if err != nil {
				t.Fatal(err)
			}
			c.SetDeadline(time.Now().Add(10 * time.Second))
			fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: app.example\r\nConnection: close\r\n\r\n", target)
			b, _ := io.ReadAll(c)
			c.Close()
			if !bytes.HasPrefix(b, []byte("HTTP/1.1 ")) || len(b) < 12 {
				t.Errorf("GET %s: no answer (%q)", target, b)
				continue
			}
			if status := string(b[9:12]); status[0] == '2' || status[0] == '3' {
				t.Errorf("GET %s: status %s, want a refusal", target, status)
			}
		}
		mu.Lock()
		after := len(hits)
		mu.Unlock()
		if after != before {
			t.Errorf("the upstream received %d of the confusing requests: %v", after-before, hits[before:])
		}
	})
}

// TestNginxLoginRedirect checks the README's variant: a 401 decision
// becomes a redirect to the login page carrying the original URL.
func TestNginxLoginRedirect(t *testing.T) {
	bin := nginxBinary(t)
	k := kratos.Get(t)
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer upstream.Close()
	apiAddr := forwardauthtest.StartPortcullis(t, rulesTemplate, forwardauthtest.Config, k.WhoamiURL())
	addr := startNginx(t, bin, apiAddr, strings.TrimPrefix(upstream.URL, "http://"), map[string]string{
		"auth_request /.portcullis/decision;":    "auth_request /.portcullis/decision;\n        error_page 401 = @login;",
		"    location = /.portcullis/decision {": "    location @login { return 302 https://login.example/?return_to=$scheme://$http_host$request_uri; }\n\n    location = /.portcullis/decision {",
	})
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := client.Get("http://" + addr + "/me?tab=2")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	want := "https://login.example/?return_to=http://" + addr + "/me?tab=2"
	if res.StatusCode != http.StatusFound || res.Header.Get("Location") != want {
		t.Errorf("status %d, Location %q; want 302 and %q", res.StatusCode, res.Header.Get("Location"), want)
	}
	// A 403 stays a 403.
	res, err = client.Get("http://" + addr + "/admin")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusForbidden {
		t.Errorf("/admin: status %d, want 403", res.StatusCode)
	}
}

// startNginx runs nginx in the foreground with the shipped portcullis.conf
// (its addresses replaced by the test's, and the edits applied) and returns
// its address. nginx is stopped when the test ends.
func startNginx(t *testing.T, bin, apiAddr, upstreamAddr string, edits map[string]string) string {
	t.Helper()
	port := forwardauthtest.FreePort(t)
	dir := t.TempDir()
	forwardauthtest.EditFile(t, dir, "portcullis.conf", map[string]string{
		"server 127.0.0.1:4456;": "server " + apiAddr + ";",
		"server 127.0.0.1:8080;": "server " + upstreamAddr + ";",
		"listen 8000;":           fmt.Sprintf("listen 127.0.0.1:%d;", port),
	}, edits)
	os.MkdirAll(filepath.Join(dir, "tmp"), 0o755)
	user := ""
	if os.Geteuid() == 0 {
		user = "user root;\n"
	}
	main := user + `worker_processes 1;
daemon off;
pid ` + filepath.Join(dir, "nginx.pid") + `;
error_log stderr warn;
events { worker_connections 128; }
http {
    access_log off;
    client_body_temp_path ` + filepath.Join(dir, "tmp", "body") + `;
    proxy_temp_path ` + filepath.Join(dir, "tmp", "proxy") + `;
    fastcgi_temp_path ` + filepath.Join(dir, "tmp", "fastcgi") + `;
    uwsgi_temp_path ` + filepath.Join(dir, "tmp", "uwsgi") + `;
    scgi_temp_path ` + filepath.Join(dir, "tmp", "scgi") + `;
    include portcullis.conf;
}
`
	os.WriteFile(filepath.Join(dir, "nginx.conf"), []byte(main), 0o600)
	cmd := exec.Command(bin, "-p", dir, "-c", filepath.Join(dir, "nginx.conf"), "-e", "stderr")
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	// SIGQUIT is nginx's graceful stop.
	forwardauthtest.StartProcess(t, cmd, syscall.SIGQUIT, func() bool { return forwardauthtest.Listening(addr) }, 50*time.Millisecond, 15*time.Second)
	return addr
}
