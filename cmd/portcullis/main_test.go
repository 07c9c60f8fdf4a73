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
	os.WriteFile(good, []byte("- id: a\n  match: {url: \"http://x/<.*>\", methods: [GET]}\n  authenticators: [{handler: anonymous}]\n  authorizer: {handler: allow}\n  mutators: [{handler: noop}]\n"), 0o600)
	out, _, err := run("rules", "validate", good)
	if err != nil || !strings.Contains(out, "1 rules OK") {
		t.Errorf("valid file: %q, %v", out, err)
	}
	bad := filepath.Join(dir, "bad.yml")
	os.WriteFile(bad, []byte("- id: c\n  match: {url: \"http://x/<.*>\", methods: [GET]}\n  authenticators: [{handler: nope}]\n  authorizer: {handler: allow}\n  mutators: [{handler: noop}]\n"), 0o600)
	_, errOut, err := run("rules", "validate", good, bad)
	if err == nil {
		t.Error("invalid file: exit status 0")
	}
	if !strings.Contains(errOut, bad+":3: rule \"c\": authenticators[0]: unknown authenticator \"nope\"") {
		t.Errorf("stderr = %q", errOut)
	}
	overlap := filepath.Join(dir, "overlap.yml")
	os.WriteFile(overlap, []byte("- id: b\n  match: {url: \"http://x/admin\", methods: [GET]}\n  authenticators: [{handler: noop}]\n  authorizer: {handler: allow}\n  mutators: [{handler: noop}]\n"), 0o600)
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
	os.WriteFile(remote, []byte(fmt.Sprintf("- id: a\n  match: {url: \"http://x/<.*>\", methods: [GET]}\n  authenticators: [{handler: anonymous}]\n  authorizer: {handler: allow}\n"+
		"  mutators: [{handler: id_token, config: {issuer_url: \"http://gw/\", jwks_url: %q}}]\n", keys.URL)), 0o600)
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
	os.WriteFile(unknown, []byte("- id: u\n  match: {url: \"http://x/<.*>\", methods: [GET]}\n  authenticators: [{handler: anonymous, config: {bar: baz}}]\n  authorizer: {handler: allow}\n  mutators: [{handler: noop}]\n"), 0o600)
	_, errOut, err := run("rules", "validate", unknown)
	if err == nil || !strings.Contains(errOut, `unknown key "bar"`) {
		t.Errorf("unknown handler key: %q, %v; want an error", errOut, err)
	}
}
