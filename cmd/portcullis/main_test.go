package main

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/portcullis-proxy/portcullis/testsupport/handlertest"
)

func run(args ...string) (stdout, stderr string, err error) {
	var out, errb bytes.Buffer
	root := newRoot()
	root.SetOut(&out)
	root.SetErr(&errb)
	root.SetArgs(args)
	err = root.Execute()
	return out.String(), errb.String(), err
}

func TestRulesValidate(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yml")
	os.WriteFile(good, []byte(handlertest.Rule{ID: "a", URL: "http://x/<.*>"}.YAML()), 0o600)
	out, _, err := run("rules", "validate", good)
	if err != nil || !strings.Contains(out, "1 rules OK") {
		t.Errorf("valid file: %q, %v", out, err)
	}
	bad := filepath.Join(dir, "bad.yml")
	os.WriteFile(bad, []byte(handlertest.Rule{ID: "c", URL: "http://x/<.*>", Authenticators: []string{"nope"}}.YAML()), 0o600)
	_, errOut, err := run("rules", "validate", good, bad)
	if err == nil {
		t.Error("invalid file: exit status 0")
	}
	if !strings.Contains(errOut, bad+":3: rule \"c\": authenticators[0]: unknown authenticator \"nope\"") {
		t.Errorf("stderr = %q", errOut)
	}
	overlap := filepath.Join(dir, "overlap.yml")
	os.WriteFile(overlap, []byte(handlertest.Rule{ID: "b", URL: "http://x/admin", Authenticators: []string{"noop"}}.YAML()), 0o600)
	_, errOut, err = run("rules", "validate", good, overlap)
	if err == nil || !strings.Contains(errOut, overlap+":1: rule \"b\" overlaps rule \"a\"") {
		t.Errorf("overlap: %q, %v", errOut, err)
	}
	// With a configuration, only its enabled handlers may be used.
	cfg := filepath.Join(dir, "c.yml")
	os.WriteFile(cfg, []byte("authenticators:\n  noop:\n    enabled: true\nauthorizers:\n  allow:\n    enabled: true\nmutators:\n  noop:\n    enabled: true\n"), 0o600)
	_, errOut, err = run("rules", "validate", "-c", cfg, good)
	if err == nil || !strings.Contains(errOut, `authenticator "anonymous" is not enabled`) {
		t.Errorf("disabled handler: %q, %v", errOut, err)
	}
}

func TestVersionAndHelp(t *testing.T) {
	out, _, err := run("version")
	if err != nil || !strings.HasPrefix(out, "portcullis ") {
		t.Errorf("version: %q %v", out, err)
	}
	for _, args := range [][]string{{"--help"}, {"serve", "--help"}, {"rules", "validate", "--help"}} {
		out, _, err := run(args...)
		if err != nil || !strings.Contains(out, "Usage:") {
			t.Errorf("%v: %q %v", args, out, err)
		}
	}
}

// TestRulesValidateStrictAndOffline: what serve loads with a warning (an
// unknown key in a handler's config) is an error here, and a remote key
// set is not fetched unless --online is given.
func TestRulesValidateStrictAndOffline(t *testing.T) {
	var hits atomic.Int64
	keys := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"keys":[]}`))
	}))
	defer keys.Close()
	dir := t.TempDir()
	remote := filepath.Join(dir, "remote.yml")
	os.WriteFile(remote, []byte(handlertest.Rule{ID: "a", URL: "http://x/<.*>", Mutators: []string{fmt.Sprintf(`id_token: {issuer_url: "http://gw/", jwks_url: %q}`, keys.URL)}}.YAML()), 0o600)
	if out, errOut, err := run("rules", "validate", remote); err != nil || !strings.Contains(out, "1 rules OK") {
		t.Errorf("remote key set: %q %q, %v", out, errOut, err)
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("rules validate fetched the remote key set %d times without --online", n)
	}
	if _, _, err := run("rules", "validate", "--online", remote); err != nil {
		t.Errorf("--online: %v", err)
	}
	if hits.Load() == 0 {
		t.Error("--online did not fetch the key set")
	}
	unknown := filepath.Join(dir, "unknown.yml")
	os.WriteFile(unknown, []byte(handlertest.Rule{ID: "u", URL: "http://x/<.*>", Authenticators: []string{"anonymous: {bar: baz}"}}.YAML()), 0o600)
	_, errOut, err := run("rules", "validate", unknown)
	if err == nil || !strings.Contains(errOut, `unknown key "bar"`) {
		t.Errorf("unknown handler key: %q, %v; want an error", errOut, err)
	}
}

// The overlaps of two patterns that the issue reported as "2 rules OK".
func TestRulesValidateProvesPatternOverlaps(t *testing.T) {
	rule := func(id, url string) string {
		return handlertest.Rule{ID: id, URL: url, Methods: []string{"GET", "POST"}, Authenticators: []string{"noop"}}.YAML()
	}
	cases := []struct{ a, b, want string }{
		{"http://example.com/<.*>", "http://example.com/api/<.*>", "both match GET http://example.com/api/ — requests matching both get 500"},
		{"http://example.com/<[a-z]+>", "http://example.com/<[a-c]+>", "both match GET http://example.com/a — requests matching both get 500"},
	}
	for _, tc := range cases {
		f := filepath.Join(t.TempDir(), "rules.yml")
		os.WriteFile(f, []byte(rule("a", tc.a)+rule("b", tc.b)), 0o600)
		out, errOut, err := run("rules", "validate", f)
		want := f + ":6: rule \"b\" overlaps rule \"a\" (" + f + ":1): " + tc.want
		if err == nil || strings.Contains(out, "OK") || !strings.Contains(errOut, want) {
			t.Errorf("%s ~ %s: stdout %q, stderr %q, err %v; want %q", tc.a, tc.b, out, errOut, err, want)
		}
	}
	f := filepath.Join(t.TempDir(), "rules.yml")
	os.WriteFile(f, []byte(rule("a", "http://example.com/<[a-z]+>")+rule("b", "http://example.com/<[0-9]+>")), 0o600)
	if out, errOut, err := run("rules", "validate", f); err != nil || !strings.Contains(out, "2 rules OK") {
		t.Errorf("disjoint rules: %q %q %v", out, errOut, err)
	}
}

// Keys a handler's global config provides say so, with or without -c; the
// project's own quickstart rules validate with their configuration.
func TestRulesValidateMissingKeysSuggestConfig(t *testing.T) {
	rules := filepath.Join("..", "..", "contrib", "quickstart", "access-rules.yml")
	_, errOut, err := run("rules", "validate", rules)
	want := `authenticator "cookie_session": key "check_session_url": required (not set by the rule; such keys usually come from the configuration file, at authenticators.cookie_session.config.check_session_url: pass it with -c FILE)`
	if err == nil || !strings.Contains(errOut, want) || !strings.Contains(errOut, "errors.handlers.redirect.config.to: pass it with -c FILE") {
		t.Errorf("without -c: %q, %v", errOut, err)
	}
	cfg := filepath.Join("..", "..", "contrib", "quickstart", "portcullis.yml")
	if out, errOut, err := run("rules", "validate", "-c", cfg, rules); err != nil || !strings.Contains(out, "rules OK") {
		t.Errorf("with -c: %q %q %v", out, errOut, err)
	}
	empty := filepath.Join(t.TempDir(), "c.yml")
	os.WriteFile(empty, []byte("errors:\n  handlers:\n    redirect:\n      enabled: true\nauthenticators:\n  cookie_session:\n    enabled: true\nauthorizers:\n  allow: {enabled: true}\nmutators:\n  noop: {enabled: true}\n  header: {enabled: true}\n"), 0o600)
	_, errOut, _ = run("rules", "validate", "-c", empty, rules)
	if !strings.Contains(errOut, "(set it in the rule's config or at authenticators.cookie_session.config.check_session_url in "+empty+")") {
		t.Errorf("with a -c lacking the key: %q", errOut)
	}
}

// Syntax errors are file:line:col and the summary says syntax.
func TestRulesValidateSyntaxErrors(t *testing.T) {
	dir := t.TempDir()
	for name, doc := range map[string]string{
		"bad.yml":  "- id: a\n  match: {url: \"http://x/\", methods: [GET]\n  authenticators: [{handler: noop}]\n",
		"bad.json": "[{\"id\": \"a\",\n \"match\": }]",
	} {
		f := filepath.Join(dir, name)
		os.WriteFile(f, []byte(doc), 0o600)
		_, errOut, err := run("rules", "validate", f)
		if err == nil || !strings.Contains(err.Error(), "syntax errors") || strings.Contains(err.Error(), "schema") {
			t.Errorf("%s: summary %v", name, err)
		}
		want := map[string]string{"bad.yml": f + ":3:3: syntax error: ", "bad.json": f + ":2:11: syntax error: invalid character '}'"}[name]
		if !strings.HasPrefix(errOut, want) {
			t.Errorf("%s: stderr %q, want prefix %q", name, errOut, want)
		}
	}
}
