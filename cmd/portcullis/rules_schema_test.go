package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/portcullis-proxy/portcullis/testsupport/handlertest"
)

func TestRulesValidateChecksSchemas(t *testing.T) {
	dir := t.TempDir()
	rulesDir := filepath.Join(dir, "rules")
	os.Mkdir(rulesDir, 0o700)
	bad := filepath.Join(rulesDir, "a.yml")
	os.WriteFile(bad, []byte("- id: a\n  match: {url: \"http://x/<.*>\", methods: [GET]}\n  authenticators:\n    - handler: anonymous\n      config: {subjekt: x}\n  authorizer: {handler: allow}\n  mutators: [{handler: noop}]\n  websocket: {max_lifetime: 1hour}\n"), 0o600)
	os.WriteFile(filepath.Join(rulesDir, "notes.txt"), []byte("not rules"), 0o600)
	cfg := filepath.Join(dir, "c.yml")
	os.WriteFile(cfg, []byte("serve:\n  proxy:\n    prot: 1\nauthenticators:\n  anonymous: {enabled: true}\nauthorizers:\n  allow: {enabled: true}\nmutators:\n  noop: {enabled: true}\n"), 0o600)

	// A directory is checked file by file, as the loader reads it.
	_, errOut, err := run("rules", "validate", "file://"+rulesDir)
	if err == nil {
		t.Fatal("exit status 0")
	}
	for _, want := range []string{
		bad + `:5: rule "a": authenticators[0].config: unknown key "subjekt"`,
		bad + `:8: rule "a": websocket.max_lifetime: "1hour" is not a duration such as "30s" or "1h30m"`,
	} {
		if !strings.Contains(errOut, want+"\n") {
			t.Errorf("stderr lacks %q:\n%s", want, errOut)
		}
	}
	// The configuration is checked against its schema too.
	_, errOut, _ = run("rules", "validate", "-c", cfg, bad)
	if want := cfg + `:3: serve.proxy: unknown key "prot"`; !strings.Contains(errOut, want) {
		t.Errorf("stderr lacks %q:\n%s", want, errOut)
	}
	// Files that conform go on to the compiler's checks.
	good := filepath.Join(dir, "good.yml")
	os.WriteFile(good, []byte(handlertest.Rule{ID: "a", URL: "http://x/<.*>", Mutators: []string{`header: {headers: {X-A: "{{ .Nope"}}`}}.YAML()), 0o600)
	_, errOut, err = run("rules", "validate", good)
	if err == nil || !strings.Contains(errOut, good+`:5: rule "a": mutators[0]: mutator "header"`) {
		t.Errorf("template error: %v\n%s", err, errOut)
	}
}

func TestCompletion(t *testing.T) {
	for _, shell := range []string{"bash", "zsh", "fish", "powershell"} {
		out, _, err := run("completion", shell)
		if err != nil || !strings.Contains(out, "portcullis") {
			t.Errorf("completion %s: %v, %d bytes", shell, err, len(out))
		}
	}
	// Subcommands and flags complete.
	out, _, err := run("__complete", "rules", "")
	if err != nil || !strings.Contains(out, "validate") || !strings.Contains(out, "test") {
		t.Errorf("completing `rules `: %v\n%s", err, out)
	}
}
