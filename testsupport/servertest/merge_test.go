package servertest_test

import (
	"reflect"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/portcullis-proxy/portcullis/testsupport/servertest"
)

// Merge lays each document over the ones before it: mappings merge key
// by key, any other value (a scalar, a sequence) is replaced.
func TestMerge(t *testing.T) {
	got := servertest.Merge(t, `
authenticators:
  cookie_session: {enabled: true, config: {check_session_url: "http://k/whoami", only: [a, b]}}
authorizers: {allow: {enabled: true}}
`, `
authenticators:
  cookie_session: {config: {only: [c], cache: {ttl: 5s}}}
  anonymous: {enabled: true}
log: {level: warn}
`)
	want := map[string]any{
		"authenticators": map[string]any{
			"cookie_session": map[string]any{"enabled": true, "config": map[string]any{
				"check_session_url": "http://k/whoami", "only": []any{"c"}, "cache": map[string]any{"ttl": "5s"},
			}},
			"anonymous": map[string]any{"enabled": true},
		},
		"authorizers": map[string]any{"allow": map[string]any{"enabled": true}},
		"log":         map[string]any{"level": "warn"},
	}
	var m map[string]any
	if err := yaml.Unmarshal([]byte(got), &m); err != nil {
		t.Fatalf("%v in\n%s", err, got)
	}
	if !reflect.DeepEqual(m, want) {
		t.Errorf("merged:\n%s\nwant %v", got, want)
	}
}

// A test's settings laid over the Kratos session authenticators serve: the
// configuration loads, with the whoami URL in both handlers.
func TestKratosSessionsLoads(t *testing.T) {
	const whoami = "http://127.0.0.1:1/sessions/whoami"
	s := servertest.Start(t, servertest.Config{YAML: servertest.Merge(t,
		servertest.KratosSessions(whoami, "cookie_session", "bearer_token"),
		"authenticators: {bearer_token: {config: {cache: {ttl: 30s}}}}\nauthorizers: {allow: {enabled: true}}\nmutators: {noop: {enabled: true}}\n")})
	for _, name := range []string{"cookie_session", "bearer_token"} {
		h, ok := s.Config().Authenticators[name]
		if !ok || !h.Enabled || h.Config["check_session_url"] != whoami || h.Config["subject_from"] != "identity.id" {
			t.Errorf("%s: %+v, want it enabled, checking sessions at %s", name, h, whoami)
		}
	}
	if ttl := s.Config().Authenticators["bearer_token"].Config["cache"]; !reflect.DeepEqual(ttl, map[string]any{"ttl": "30s"}) {
		t.Errorf("bearer_token cache %v, want the test's ttl laid over the base", ttl)
	}
}
