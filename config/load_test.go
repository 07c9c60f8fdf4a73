package config_test

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-proxy/portcullis/config"
	"github.com/portcullis-proxy/portcullis/config/configtest"
)

// names are the handler names environment variables can address.
var names = configtest.Names()

func TestLoadOathkeeperFile(t *testing.T) {
	c, err := config.Load("testdata/oathkeeper.yml", nil, names)
	if err != nil {
		t.Fatal(err)
	}
	if c.Serve.Proxy.Port != 4455 || c.Serve.API.Port != 4456 || c.Serve.Prometheus.Port != 9000 {
		t.Errorf("ports = %d %d %d", c.Serve.Proxy.Port, c.Serve.API.Port, c.Serve.Prometheus.Port)
	}
	if c.Serve.Proxy.Timeout.Read != 10*time.Second || c.Serve.Proxy.Timeout.Idle != time.Minute {
		t.Errorf("timeouts = %+v", c.Serve.Proxy.Timeout)
	}
	if c.Serve.Proxy.Timeout.ReadHeader != 5*time.Second {
		t.Errorf("read_header default = %v, want 5s", c.Serve.Proxy.Timeout.ReadHeader)
	}
	if c.AccessRules.MatchingStrategy != "glob" || len(c.AccessRules.Repositories) != 2 {
		t.Errorf("access_rules = %+v", c.AccessRules)
	}
	if !c.Authenticators["anonymous"].Enabled || c.Authenticators["anonymous"].Config["subject"] != "guest" {
		t.Errorf("authenticators.anonymous = %+v", c.Authenticators["anonymous"])
	}
	if !c.Errors.Handlers["redirect"].Enabled || !reflect.DeepEqual(c.Errors.Fallback, []string{"json"}) {
		t.Errorf("errors = %+v", c.Errors)
	}
	if c.Log.Level != "debug" || c.Log.Format != "json" {
		t.Errorf("log = %+v", c.Log)
	}
	ws, err := c.WebSocketDefaults()
	if err != nil || ws.MaxLifetime != 30*time.Minute || !ws.OriginAllowed([]string{"https://app.example"}, "") || ws.OriginAllowed([]string{"https://evil.example"}, "") {
		t.Errorf("websocket = %+v, %v", ws, err)
	}
	if ws.RevalidateEvery != time.Minute {
		t.Errorf("websocket.revalidate_every default = %v", ws.RevalidateEvery)
	}
	// serve.proxy.cors is an Oathkeeper key portcullis does not have: warned.
	if len(c.Warnings) != 1 || !strings.Contains(c.Warnings[0], "serve.proxy.cors.enabled") {
		t.Errorf("warnings = %q", c.Warnings)
	}
}

func TestLoadDefaultsWithoutFile(t *testing.T) {
	c, err := config.Load("", nil, names)
	if err != nil {
		t.Fatal(err)
	}
	if c.Serve.Proxy.Port != 4455 || c.Serve.API.Port != 4456 || c.AccessRules.MatchingStrategy != "regexp" || c.Log.Format != "text" {
		t.Errorf("defaults = %+v", c)
	}
	if !c.Errors.Handlers["json"].Enabled {
		t.Error("the json error handler is not enabled by default")
	}
}

func TestEnvironmentOverrides(t *testing.T) {
	env := []string{
		"SERVE_PROXY_PORT=8080",
		"LOG_LEVEL=warn",
		"ACCESS_RULES_MATCHING_STRATEGY=regexp",
		"ACCESS_RULES_REPOSITORIES=file:///a.yml,file:///b.yml",
		"AUTHENTICATORS_ANONYMOUS_CONFIG_SUBJECT=visitor",
		"AUTHENTICATORS_COOKIE_SESSION_ENABLED=true",
		"AUTHENTICATORS_COOKIE_SESSION_CONFIG_CHECK_SESSION_URL=http://kratos/sessions/whoami",
		"SERVE_PROXY_TIMEOUT_READ=3s",
		"WEBSOCKET_MAX_LIFETIME=2m",
		"HOME=/root",
	}
	c, err := config.Load("testdata/oathkeeper.yml", env, names)
	if err != nil {
		t.Fatal(err)
	}
	if c.Serve.Proxy.Port != 8080 || c.Log.Level != "warn" || c.AccessRules.MatchingStrategy != "regexp" || c.Serve.Proxy.Timeout.Read != 3*time.Second {
		t.Errorf("overrides not applied: port %d level %s strategy %s read %v", c.Serve.Proxy.Port, c.Log.Level, c.AccessRules.MatchingStrategy, c.Serve.Proxy.Timeout.Read)
	}
	if !reflect.DeepEqual(c.AccessRules.Repositories, []string{"file:///a.yml", "file:///b.yml"}) {
		t.Errorf("repositories = %q", c.AccessRules.Repositories)
	}
	if c.Authenticators["anonymous"].Config["subject"] != "visitor" {
		t.Errorf("anonymous subject = %v", c.Authenticators["anonymous"].Config["subject"])
	}
	cs := c.Authenticators["cookie_session"]
	if !cs.Enabled || cs.Config["check_session_url"] != "http://kratos/sessions/whoami" {
		t.Errorf("cookie_session = %+v", cs)
	}
	if ws, _ := c.WebSocketDefaults(); ws.MaxLifetime != 2*time.Minute {
		t.Errorf("websocket.max_lifetime = %v", ws.MaxLifetime)
	}
}

func TestLoadErrorsNameKeyAndLine(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		name, doc, want string
		env             []string
	}{
		{"wrong type", "serve:\n  proxy:\n    port: abc\n", "c.yml:3: 'serve.proxy.port'", nil},
		{"bad duration", "serve:\n  proxy:\n    timeout:\n      read: soon\n", "c.yml:4: 'serve.proxy.timeout.read'", nil},
		{"bad yaml", "serve:\n  proxy: [\n", "c.yml:2:10: syntax error: sequence end token ']' not found", nil},
		{"bad strategy", "access_rules:\n  matching_strategy: fuzzy\n", "c.yml:2: 'access_rules.matching_strategy' unknown matching strategy", nil},
		{"bad log format", "log:\n  format: xml\n", "c.yml:2: 'log.format' must be text or json", nil},
		{"bad relay", "serve:\n  proxy:\n    websocket_relay: threads\n", "c.yml:3: 'serve.proxy.websocket_relay' must be goroutines or poll", nil},
		{"negative close lead", "serve:\n  proxy:\n    websocket_close_lead: -5ms\n", "c.yml:3: 'serve.proxy.websocket_close_lead' must not be negative", nil},
		{"bad env", "", "'serve.proxy.port'", []string{"SERVE_PROXY_PORT=eighty"}},
		{"bad websocket", "websocket:\n  max_lifetim: 1h\n", "unknown field \"max_lifetim\"", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, "c.yml")
			os.WriteFile(p, []byte(tc.doc), 0o600)
			_, err := config.Load(p, tc.env, names)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error = %v, want it to contain %q", err, tc.want)
			}
		})
	}
	if _, err := config.Load(filepath.Join(dir, "missing.yml"), nil, names); err == nil {
		t.Error("missing file: no error")
	}
}

func TestLoadJSON(t *testing.T) {
	p := filepath.Join(t.TempDir(), "c.json")
	os.WriteFile(p, []byte(`{"serve":{"proxy":{"port":1234}},"authenticators":{"noop":{"enabled":true}}}`), 0o600)
	c, err := config.Load(p, nil, names)
	if err != nil {
		t.Fatal(err)
	}
	if c.Serve.Proxy.Port != 1234 || !c.Authenticators["noop"].Enabled {
		t.Errorf("json config = %+v", c)
	}
}

// TestLoadErrorsAreKeyErrors: a value that does not decode or validate is
// a *config.KeyError carrying the file, the key's path and the line it is
// written on — found with errors.As, never read from the message. A value
// the environment set has no line in the file.
func TestLoadErrorsAreKeyErrors(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "c.yml")
	cases := []struct {
		name, doc string
		env       []string
		path      []string
		line      int
	}{
		{"wrong type", "serve:\n  proxy:\n    port: abc\n", nil, []string{"serve", "proxy", "port"}, 3},
		{"handler flag", "authenticators:\n  noop:\n    enabled: true\n  jwt:\n    enabled: maybe\n", nil, []string{"authenticators", "jwt", "enabled"}, 5},
		{"list item", "access_rules:\n  repositories:\n    - file:///a.yml\n    - [b]\n", nil, []string{"access_rules", "repositories", "1"}, 4},
		{"strategy", "access_rules:\n  matching_strategy: fuzzy\n", nil, []string{"access_rules", "matching_strategy"}, 2},
		{"websocket unknown key", "websocket:\n  max_lifetime: 1h\n  max_lifetim: 1h\n", nil, []string{"websocket", "max_lifetim"}, 3},
		{"websocket duration", "websocket:\n  close_grace: soon\n", nil, []string{"websocket", "close_grace"}, 2},
		{"websocket negative", "websocket:\n  idle_timeout: -1s\n", nil, []string{"websocket", "idle_timeout"}, 2},
		{"websocket origin", "websocket:\n  allowed_origins:\n    - https://a.example\n    - not an origin\n", nil, []string{"websocket", "allowed_origins", "1"}, 4},
		{"log buffer", "log:\n  buffer:\n    size: 1024\n    flush: 0s\n", nil, []string{"log", "buffer", "flush"}, 4},
		{"sampling ratio", "tracing:\n  providers:\n    otlp:\n      sampling:\n        sampling_ratio: 2\n", nil, []string{"tracing", "providers", "otlp", "sampling", "sampling_ratio"}, 5},
		{"from the environment", "serve:\n  proxy:\n    port: 80\n", []string{"SERVE_PROXY_PORT=eighty"}, []string{"serve", "proxy", "port"}, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if err := os.WriteFile(p, []byte(tc.doc), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := config.Load(p, tc.env, names)
			var ke *config.KeyError
			if !errors.As(err, &ke) {
				t.Fatalf("error = %v (%T), want a *config.KeyError", err, err)
			}
			if ke.File != p || ke.Line != tc.line || !reflect.DeepEqual(ke.Path, tc.path) {
				t.Errorf("KeyError = {File %q, Line %d, Path %q}, want {%q, %d, %q}", ke.File, ke.Line, ke.Path, p, tc.line, tc.path)
			}
		})
	}
}

// TestLoadReportsEveryBadKey: several values that do not decode are each
// a *KeyError, one per line of the message, in the order they are written.
func TestLoadReportsEveryBadKey(t *testing.T) {
	p := filepath.Join(t.TempDir(), "c.yml")
	doc := "serve:\n  api:\n    port: x\n  proxy:\n    port: y\nlog:\n  leak_sensitive_values: maybe\n"
	if err := os.WriteFile(p, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := config.Load(p, nil, names)
	if err == nil {
		t.Fatal("loaded")
	}
	lines := strings.Split(err.Error(), "\n")
	want := []string{p + ":3: 'serve.api.port'", p + ":5: 'serve.proxy.port'", p + ":7: 'log.leak_sensitive_values'"}
	if len(lines) != len(want) {
		t.Fatalf("error = %q, want %d lines", err, len(want))
	}
	for i, w := range want {
		if !strings.HasPrefix(lines[i], w) {
			t.Errorf("line %d = %q, want it to start with %q", i+1, lines[i], w)
		}
	}
	var ke *config.KeyError
	if !errors.As(err, &ke) || ke.Line != 3 {
		t.Errorf("errors.As found %+v, want the first key's error", ke)
	}
}
