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
	"time"

	"github.com/portcullis-proxy/portcullis/config"
	"github.com/portcullis-proxy/portcullis/internal/app"
	"github.com/portcullis-proxy/portcullis/internal/registry"
)

// With log.buffer on, request lines wait in the buffer (an hour's flush
// interval here, so nothing but the server flushes them), reach the log on
// FlushLog and at the end of Shutdown, and a line logged after Shutdown
// still arrives.
func TestLogBufferFlushesOnShutdown(t *testing.T) {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "ok")
	}))
	defer upstream.Close()
	dir := t.TempDir()
	rulesFile := filepath.Join(dir, "access-rules.yml")
	_ = os.WriteFile(rulesFile, []byte(fmt.Sprintf("- id: anon\n  match: {url: \"http://<[^/]+>/<.*>\", methods: [GET]}\n  authenticators: [{handler: anonymous}]\n  authorizer: {handler: allow}\n  mutators: [{handler: noop}]\n  upstream: {url: %q}\n", upstream.URL)), 0o600)
	cfgFile := filepath.Join(dir, "config.yml")
	_ = os.WriteFile(cfgFile, []byte(fmt.Sprintf(`
serve:
  proxy: {host: 127.0.0.1, port: 0}
  api: {host: 127.0.0.1, port: 0}
  prometheus: {host: 127.0.0.1, port: 0}
access_rules: {repositories: ["file://%s"]}
authenticators: {anonymous: {enabled: true}}
authorizers: {allow: {enabled: true}}
mutators: {noop: {enabled: true}}
log:
  buffer: {size: 65536, flush: 1h}
`, rulesFile)), 0o600)
	cfg, err := config.Load(cfgFile, nil, registry.HandlerNames(registry.NewCatalog()))
	if err != nil {
		t.Fatal(err)
	}
	log, err := app.NewLogger(cfg.Log)
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	log.Out = logs
	srv, err := app.New(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	srv.Start()
	get := func(path string) {
		t.Helper()
		resp, err := http.Get("http://" + srv.Addr("proxy") + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d", path, resp.StatusCode)
		}
	}
	get("/first")
	if strings.Contains(logs.String(), "/first") {
		t.Fatalf("request line written at once with log.buffer on:\n%s", logs)
	}
	if err := srv.FlushLog(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "path=/first") {
		t.Fatalf("request line missing after FlushLog:\n%s", logs)
	}
	get("/second")
	if strings.Contains(logs.String(), "/second") {
		t.Fatalf("second request line written at once:\n%s", logs)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "path=/second") {
		t.Fatalf("request line missing after Shutdown:\n%s", logs)
	}
	log.Info("after shutdown")
	if !strings.Contains(logs.String(), "after shutdown") {
		t.Fatalf("line after Shutdown lost:\n%s", logs)
	}
}

// A bad log.buffer is a configuration error naming the key and its line.
func TestLogBufferBadValues(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{"log:\n  buffer:\n    size: -1\n", "log.buffer.size"},
		{"log:\n  buffer:\n    size: 1024\n    flush: 0s\n", "log.buffer.flush"},
		{"log:\n  buffer:\n    size: 999999999\n", "log.buffer.size"},
	} {
		f := filepath.Join(t.TempDir(), "config.yml")
		_ = os.WriteFile(f, []byte(tc.yaml), 0o600)
		_, err := config.Load(f, nil, registry.HandlerNames(registry.NewCatalog()))
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), f+":") {
			t.Errorf("%q: err = %v, want %s with the file", tc.yaml, err, tc.want)
		}
	}
}
