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
	"github.com/portcullis-proxy/portcullis/config/configtest"
	"github.com/portcullis-proxy/portcullis/testsupport/handlertest"
	"github.com/portcullis-proxy/portcullis/testsupport/servertest"
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
	s := servertest.Start(t, servertest.Config{YAML: `
authenticators: {anonymous: {enabled: true}}
authorizers: {allow: {enabled: true}}
mutators: {noop: {enabled: true}}
log:
  buffer: {size: 65536, flush: 1h}
`, Rules: handlertest.Rule{ID: "anon", URL: "http://<[^/]+>/<.*>", Upstream: upstream.URL}.YAML()})
	get := func(path string) {
		t.Helper()
		resp, err := http.Get(s.URL() + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d", path, resp.StatusCode)
		}
	}
	get("/first")
	if strings.Contains(s.Logs(), "/first") {
		t.Fatalf("request line written at once with log.buffer on:\n%s", s.Logs())
	}
	if err := s.App().FlushLog(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(s.Logs(), "path=/first") {
		t.Fatalf("request line missing after FlushLog:\n%s", s.Logs())
	}
	get("/second")
	if strings.Contains(s.Logs(), "/second") {
		t.Fatalf("second request line written at once:\n%s", s.Logs())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(s.Logs(), "path=/second") {
		t.Fatalf("request line missing after Shutdown:\n%s", s.Logs())
	}
	s.App().Log.Info("after shutdown")
	if !strings.Contains(s.Logs(), "after shutdown") {
		t.Fatalf("line after Shutdown lost:\n%s", s.Logs())
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
		_, err := config.Load(f, nil, configtest.Names())
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), f+":") {
			t.Errorf("%q: err = %v, want %s with the file", tc.yaml, err, tc.want)
		}
	}
}
