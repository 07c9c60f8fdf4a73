// Package docs_test checks the documentation against the code: every
// relative link points at a file that exists, and every example marked
// <!-- check: config --> or <!-- check: rules --> conforms to the JSON
// Schemas (configuration examples also load with the real loader, without
// warnings). The rules-test example of access-rules.md is run by
// cmd/portcullis's tests.
package docs_test

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/portcullis-proxy/portcullis/config"
	"github.com/portcullis-proxy/portcullis/config/configtest"
	"github.com/portcullis-proxy/portcullis/schemas"
)

func markdownFiles(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, p := range []string{"*.md", "handlers/*.md", "../README.md", "../contrib/*/README.md"} {
		m, err := filepath.Glob(p)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, m...)
	}
	if len(out) < 10 {
		t.Fatalf("found only %v", out)
	}
	return out
}

var link = regexp.MustCompile(`\]\(([^)\s]+)\)`)

func TestRelativeLinksResolve(t *testing.T) {
	for _, f := range markdownFiles(t) {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range link.FindAllStringSubmatch(string(data), -1) {
			target := m[1]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "#") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			target, _, _ = strings.Cut(target, "#")
			if _, err := os.Stat(filepath.Join(filepath.Dir(f), target)); err != nil {
				t.Errorf("%s: link to %s: %v", f, m[1], err)
			}
		}
	}
}

var checked = regexp.MustCompile("(?s)<!-- check: (config|rules|cases) -->\\s*```ya?ml\\n(.*?)```")

func TestMarkedExamplesConform(t *testing.T) {
	sc, err := schemas.New()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, f := range markdownFiles(t) {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range checked.FindAllStringSubmatch(string(data), -1) {
			n++
			kind, body := m[1], m[2]
			switch kind {
			case "rules":
				for _, e := range sc.CheckRules(f, []byte(body)) {
					t.Errorf("example in %v", e)
				}
			case "config":
				for _, e := range sc.CheckConfig(f, []byte(body)) {
					t.Errorf("example in %v", e)
				}
				tmp := filepath.Join(t.TempDir(), "c.yml")
				os.WriteFile(tmp, []byte(body), 0o600)
				c, err := config.Load(tmp, nil, configtest.Names())
				if err != nil {
					t.Errorf("%s: example does not load: %v", f, err)
				} else if len(c.Warnings) > 0 {
					t.Errorf("%s: example loads with warnings: %v", f, c.Warnings)
				}
			}
		}
	}
	if n < 4 {
		t.Errorf("found %d marked examples, want at least 4", n)
	}
}

// TestEnvironmentOverridesAsDocumented checks configuration.md's
// statements about environment variables.
func TestEnvironmentOverridesAsDocumented(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "c.yml")
	os.WriteFile(file, []byte("authenticators:\n  cookie_session:\n    config:\n      cache: {ttl: 5s}\n"), 0o600)
	env := []string{
		"SERVE_PROXY_PORT=8080",
		"ACCESS_RULES_REPOSITORIES=file:///a.yml,file:///b.yml",
		`ERRORS_FALLBACK=["redirect","json"]`,
		"AUTHENTICATORS_COOKIE_SESSION_ENABLED=true",
		"AUTHENTICATORS_COOKIE_SESSION_CONFIG_CHECK_SESSION_URL=http://kratos:4433/sessions/whoami",
		"AUTHENTICATORS_COOKIE_SESSION_CONFIG_CACHE_TTL=1s",
		"WEBSOCKET_MAX_LIFETIME=30m",
		"UNRELATED_VARIABLE=x",
	}
	c := configtest.Load(t, file, env...)
	cs := c.Authenticators["cookie_session"]
	checks := []struct{ what, got, want string }{
		{"port", fmt.Sprint(c.Serve.Proxy.Port), "8080"},
		{"repositories", strings.Join(c.AccessRules.Repositories, " "), "file:///a.yml file:///b.yml"},
		{"fallback", strings.Join(c.Errors.Fallback, " "), "redirect json"},
		{"enabled", fmt.Sprint(cs.Enabled), "true"},
		{"check_session_url", fmt.Sprint(cs.Config["check_session_url"]), "http://kratos:4433/sessions/whoami"},
		{"cache.ttl (present in the file)", fmt.Sprint(cs.Config["cache"]), "map[ttl:1s]"},
		{"websocket.max_lifetime", c.WebSocket.MaxLifetime.String(), "30m0s"},
	}
	for _, ch := range checks {
		if ch.got != ch.want {
			t.Errorf("%s = %q, want %q", ch.what, ch.got, ch.want)
		}
	}
}

// TestUnknownAndDisabledHandlersAsDocumented checks configuration.md's
// statements about handler names portcullis does not know and handlers
// not enabled; internal/app's TestUnknownAndDisabledHandlersNeverServe
// checks the server does what they say.
func TestUnknownAndDisabledHandlersAsDocumented(t *testing.T) {
	doc, err := os.ReadFile("configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	text := strings.Join(strings.Fields(string(doc)), " ")
	for _, says := range []string{
		"An **enabled** block for a handler name portcullis does not know stops start-up with its key and line",
		"with `enabled: false` the block is warned about and ignored",
		"a rule naming a handler portcullis does not know, like one naming a disabled handler, answers every request it matches with 500",
		"a rule naming a disabled one never serves",
	} {
		if !strings.Contains(text, says) {
			t.Errorf("configuration.md does not say %q", says)
		}
	}
	if strings.Contains(text, "even with `enabled: false`") {
		t.Error("configuration.md says an unknown handler stops start-up even when it is disabled; it is warned about and ignored")
	}
}
