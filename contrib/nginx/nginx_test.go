//go:build linux

// Package nginx_test runs a real nginx with the shipped portcullis.conf in
// front of a real upstream, asking a real portcullis (in-process, on
// loopback) for every decision, with identities from a real Ory Kratos.
package nginx_test

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/portcullis-proxy/portcullis/contrib/internal/forwardauthtest"
	"github.com/portcullis-proxy/portcullis/testsupport/kratostest"
	"github.com/portcullis-proxy/portcullis/testsupport/proctest"
)

var kratos = &kratostest.Shared{}

func TestMain(m *testing.M) { kratostest.RunMain(m, kratos) }

func TestNginxAuthRequest(t *testing.T) {
	bin := forwardauthtest.Installed(t, "nginx", "/usr/sbin/nginx")
	g := forwardauthtest.Run(t, kratos.Get(t), forwardauthtest.Gateway{
		Start: func(t *testing.T, apiAddr, upstreamAddr string) string {
			return startNginx(t, bin, apiAddr, upstreamAddr, nil)
		},
		// auth_request answers 401 and 403 as they are and turns any
		// other refusal (404 when no rule matches, 400 from the strict
		// decision API) into 500; a path that climbs above the root nginx
		// refuses itself, with 400, before it asks.
		Relay: func(d forwardauthtest.Denial) int {
			switch {
			case d.Path == "/public/%2E%2E/%2E%2E/admin":
				return http.StatusBadRequest
			case d.Want == http.StatusUnauthorized || d.Want == http.StatusForbidden:
				return d.Want
			}
			return http.StatusInternalServerError
		},
		// A 302 from the decision subrequest is an error to nginx: the
		// login redirect is nginx's own (TestNginxLoginRedirect).
		OwnLogin: true,
		// nginx passes portcullis $request_uri, as the client wrote it: a
		// path whose meaning differs between parsers is refused (400,
		// which auth_request turns into 500), never decided.
		PathConfusion: []forwardauthtest.Denial{
			// The decision location cannot be called from outside.
			{Path: "/.portcullis/decision", Want: http.StatusNotFound},
		},
	})

	t.Run("paths the application would read otherwise are refused", func(t *testing.T) {
		// The review's two attacks, sent byte for byte: an encoded slash
		// the application routes on raw (/admin/…) while a decoding
		// gateway saw /public/y, and a raw "#" that hides /secret behind
		// /public/x. nginx passes portcullis the same URI it passes the
		// application, and portcullis refuses both with 400.
		before := g.Hits()
		for _, target := range []string{"/admin/..%2fpublic/y", "/admin/..%2Fpublic/y", "/secret#/../public/x", "/admin#/../public/x", "/public/..%5cadmin"} {
			c, err := net.Dial("tcp", g.Addr)
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
		if n := g.Hits() - before; n != 0 {
			t.Errorf("the upstream received %d of the confusing requests: %v", n, g.Since(before))
		}
	})
}

// TestNginxLoginRedirect checks the README's variant: a 401 decision
// becomes a redirect to the login page carrying the original URL.
func TestNginxLoginRedirect(t *testing.T) {
	bin := forwardauthtest.Installed(t, "nginx", "/usr/sbin/nginx")
	k := kratos.Get(t)
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer upstream.Close()
	apiAddr := forwardauthtest.StartPortcullis(t, k).Addr("api")
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
	port := proctest.FreePort(t)
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
	proctest.Start(t, cmd, syscall.SIGQUIT, proctest.Options{
		Ready: func() bool { return proctest.Listening(addr) }, Timeout: 15 * time.Second, ShowOnFailure: 1 << 20,
	})
	return addr
}
