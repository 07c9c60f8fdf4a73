package app_test

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/portcullis-proxy/portcullis/internal/app"
)

// Open refuses, with an error naming what is wrong, a configuration that
// does not load, a log block the logger cannot take and a listener that
// cannot bind; nothing is served then.
func TestOpenErrors(t *testing.T) {
	busy := startServer(t, "", "")
	dir := t.TempDir()
	for _, tc := range []struct{ name, yaml, want string }{
		{"not YAML", "serve: [\n", "cfg.yml:"},
		{"bad log level", "log: {level: loud}\n", "log.level"},
		{"port in use", "serve:\n  proxy: {host: 127.0.0.1, port: " + strings.Split(busy.Addr("proxy"), ":")[1] + "}\n  prometheus: {port: -1}\n", "serve.proxy"},
	} {
		f := filepath.Join(dir, "cfg.yml")
		if err := os.WriteFile(f, []byte(tc.yaml), 0o600); err != nil {
			t.Fatal(err)
		}
		srv, err := app.Open(f, nil, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Open = %v, %v; want an error naming %q", tc.name, srv, err, tc.want)
		}
	}
	if _, err := app.Open(filepath.Join(dir, "missing.yml"), nil, io.Discard); err == nil || !strings.Contains(err.Error(), "missing.yml") {
		t.Errorf("missing file: %v, want an error naming it", err)
	}
}
