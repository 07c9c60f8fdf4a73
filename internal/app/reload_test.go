package app_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/portcullis-proxy/portcullis/testsupport/handlertest"
	"github.com/portcullis-proxy/portcullis/testsupport/servertest"
)

// TestConfigHotReload replaces the configuration file under a running
// server, as Oathkeeper's test/reload does, and checks that each valid
// configuration serves with its own handlers and rules, and that a broken
// one is refused with file:line while the last good one keeps serving.
func TestConfigHotReload(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) }))
	defer up.Close()
	dir := t.TempDir()
	rule := func(id, path, authn, authz string) string {
		return handlertest.Rule{ID: id, URL: "http://<[^/]+>" + path, Authenticators: []string{authn}, Authorizer: authz, Upstream: up.URL}.YAML()
	}
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	allowRules := write("allow.yml", rule("r1", "/rules", "noop", "allow"))
	denyRules := write("deny.yml", rule("r1", "/rules", "anonymous", "deny"))
	otherRules := write("other.yml", rule("r2", "/other-rules", "anonymous", "allow"))
	configFor := func(anonymous bool, repos ...string) string {
		var b strings.Builder
		b.WriteString("serve:\n  proxy: {host: 127.0.0.1, port: 0}\n  api: {host: 127.0.0.1, port: 0}\n  prometheus: {host: 127.0.0.1, port: 0}\n")
		b.WriteString("access_rules:\n  poll_interval: 20ms\n")
		if len(repos) > 0 {
			b.WriteString("  repositories:\n")
			for _, r := range repos {
				fmt.Fprintf(&b, "    - file://%s\n", r)
			}
		}
		fmt.Fprintf(&b, "authenticators:\n  noop: {enabled: true}\n  anonymous: {enabled: %t}\n", anonymous)
		b.WriteString("authorizers:\n  allow: {enabled: true}\n  deny: {enabled: true}\nmutators:\n  noop: {enabled: true}\n")
		return b.String()
	}
	cfgFile := write("config.yml", configFor(true))
	s := servertest.Start(t, servertest.Config{File: cfgFile})
	status := func(path string) int {
		res, err := http.Get(s.URL() + path)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	// replace writes the configuration and waits until /rules answers want
	// (the watcher polls every 20ms and applies a content seen twice).
	replace := func(content, path string, want int) {
		t.Helper()
		write("config.yml", content)
		waitUntil(t, func() bool { return status(path) == want })
	}

	if got := status("/rules"); got != http.StatusNotFound {
		t.Fatalf("no repositories: /rules = %d, want 404", got)
	}
	replace(configFor(true, allowRules), "/rules", http.StatusOK)
	replace(configFor(true, denyRules), "/rules", http.StatusForbidden)
	// A rule whose authenticator is disabled loads and fails closed.
	replace(configFor(false, denyRules), "/rules", http.StatusInternalServerError)
	if got := status("/other-rules"); got != http.StatusNotFound {
		t.Fatalf("/other-rules = %d before its repository is configured, want 404", got)
	}
	replace(configFor(true, allowRules, otherRules), "/other-rules", http.StatusOK)
	if got := status("/rules"); got != http.StatusOK {
		t.Errorf("/rules = %d with both repositories, want 200", got)
	}
	// Rules still reload under the new configuration.
	write("other.yml", rule("r2", "/other-rules", "anonymous", "deny"))
	waitUntil(t, func() bool { return status("/other-rules") == http.StatusForbidden })

	// Broken configurations: each is refused with its file:line, and the
	// last good configuration and rules keep serving.
	good := configFor(true, allowRules, otherRules)
	for _, tc := range []struct {
		name, content, want string
	}{
		{"not YAML", good + "mutators: [\n", cfgFile + ":18:"},
		{"wrong type", strings.Replace(good, "poll_interval: 20ms", "poll_interval: soon", 1), cfgFile + ":6:"},
		{"bad handler config", good + "  id_token:\n    enabled: true\n    config: {issuer_url: [1]}\n", cfgFile + ":18:"},
		{"unknown handler", strings.Replace(good, "authorizers:\n", "  kerberos: {enabled: true}\nauthorizers:\n", 1), cfgFile + ":13:"},
		{"rules that do not compile", strings.Replace(good, "file://"+otherRules, "file://"+filepath.Join(dir, "missing.yml"), 1), "missing.yml"},
	} {
		write("config.yml", tc.content)
		err := s.App().ReloadConfig(context.Background())
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: ReloadConfig = %v, want an error naming %q", tc.name, err, tc.want)
		} else {
			t.Logf("%s: %v", tc.name, err)
		}
		if got := status("/rules"); got != http.StatusOK {
			t.Errorf("%s: /rules = %d after a refused reload, want the last good 200", tc.name, got)
		}
		if got := status("/other-rules"); got != http.StatusForbidden {
			t.Errorf("%s: /other-rules = %d after a refused reload, want the last good 403", tc.name, got)
		}
	}
	// The watcher logs the refusal and keeps polling: a good file applies.
	waitUntil(t, func() bool { return strings.Contains(s.Logs(), "configuration not reloaded") })
	replace(configFor(true), "/rules", http.StatusNotFound)
	if got := status("/other-rules"); got != http.StatusNotFound {
		t.Errorf("no repositories: /other-rules = %d, want 404", got)
	}
}
