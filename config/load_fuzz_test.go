package config_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/portcullis-proxy/portcullis/config"
)

// FuzzLoad loads arbitrary configuration files (YAML, or JSON by name)
// with an arbitrary environment override. Whatever the input: no panic; the
// outcome is the same when loaded twice; a configuration that loads has a
// valid matching strategy, websocket defaults and log format, and every
// handler's config renders as JSON.
func FuzzLoad(f *testing.F) {
	seed, err := os.ReadFile("testdata/oathkeeper.yml")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed, false, "SERVE_PROXY_PORT", "8080")
	f.Add(seed, false, "AUTHENTICATORS_COOKIE_SESSION_CONFIG_CHECK_SESSION_URL", "http://kratos/sessions/whoami")
	f.Add([]byte(`{"serve":{"proxy":{"port":1}},"log":{"level":"debug","format":"json"}}`), true, "ACCESS_RULES_REPOSITORIES", "file:///a,file:///b")
	f.Add([]byte("websocket:\n  max_lifetime: 1h\n  allowed_origins: [\"https://a\"]\n"), false, "WEBSOCKET_CLOSE_GRACE", "-1s")
	f.Add([]byte("serve:\n  proxy:\n    timeout: {read: notaduration}\n"), false, "LOG_LEVEL", "[1, 2]")
	f.Add([]byte("authenticators:\n  anonymous: {enabled: yes, config: {subject: 1}}\n"), false, "AUTHORIZERS_ALLOW_ENABLED", "{a: b}")
	f.Add([]byte("a: &x [*x]\n"), false, "", "")
	f.Add([]byte("access_rules: {matching_strategy: regex}\n"), false, "ERRORS_FALLBACK", "json,redirect")
	f.Fuzz(func(t *testing.T, doc []byte, isJSON bool, envName, envVal string) {
		name := "config.yml"
		if isJSON {
			name = "config.json"
		}
		path := filepath.Join(t.TempDir(), name)
		if err := os.WriteFile(path, doc, 0o600); err != nil {
			t.Fatal(err)
		}
		env := []string{envName + "=" + envVal}
		c1, err1 := config.Load(path, env, names)
		c2, err2 := config.Load(path, env, names)
		if (err1 == nil) != (err2 == nil) || (err1 != nil && err1.Error() != err2.Error()) {
			t.Fatalf("two loads disagree: %v / %v", err1, err2)
		}
		if err1 != nil {
			return
		}
		if !reflect.DeepEqual(c1, c2) {
			t.Fatalf("two loads disagree:\n%+v\n%+v", c1, c2)
		}
		if _, err := c1.Strategy(); err != nil {
			t.Fatalf("loaded with an invalid strategy: %v", err)
		}
		if _, err := c1.WebSocketDefaults(); err != nil {
			t.Fatalf("loaded with invalid websocket defaults: %v", err)
		}
		if c1.Log.Format != "text" && c1.Log.Format != "json" {
			t.Fatalf("loaded with log.format %q", c1.Log.Format)
		}
		for _, block := range []map[string]config.HandlerConfig{c1.Authenticators, c1.Authorizers, c1.Mutators, c1.Errors.Handlers} {
			for n, h := range block {
				raw, err := h.Raw()
				if err != nil {
					continue
				}
				if len(raw) > 0 && !json.Valid(raw) {
					t.Fatalf("%s: config renders as invalid JSON %q", n, raw)
				}
			}
		}
	})
}
