package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
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
