package app_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/portcullis-proxy/portcullis/config"
	"github.com/portcullis-proxy/portcullis/internal/app"
	"github.com/portcullis-proxy/portcullis/internal/registry"
)

// syncBuffer is a log sink safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in time")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// started is a running server with its log.
type started struct {
	*app.Server
	logs *syncBuffer
}

func (s started) url(listener string) string {
	scheme := "http"
	if s.Config.Serve.Proxy.TLS.Enabled() && listener == "proxy" {
		scheme = "https"
	}
	return scheme + "://" + s.Addr(listener)
}

// startServer writes the rules and a configuration (whose serve block
// binds loopback on free ports, whatever cfgYAML says elsewhere) into a
// temporary directory and starts the whole server from them.
func startServer(t *testing.T, cfgYAML, rulesYAML string, env ...string) started {
	t.Helper()
	dir := t.TempDir()
	rulesFile := filepath.Join(dir, "access-rules.yml")
	if err := os.WriteFile(rulesFile, []byte(rulesYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	cfgFile := filepath.Join(dir, "config.yml")
	full := fmt.Sprintf("access_rules:\n  poll_interval: 20ms\n  repositories: [\"file://%s\"]\n%s\n", rulesFile, cfgYAML)
	if !strings.Contains(cfgYAML, "serve:") {
		full += "serve:\n  proxy: {host: 127.0.0.1, port: 0}\n  api: {host: 127.0.0.1, port: 0}\n  prometheus: {host: 127.0.0.1, port: 0}\n"
	}
	if err := os.WriteFile(cfgFile, []byte(full), 0o600); err != nil {
		t.Fatal(err)
	}
	return launch(t, cfgFile, env)
}

// launch starts the whole server from a configuration file, its log kept
// in memory, and shuts it down when the test ends.
func launch(t *testing.T, cfgFile string, env []string) started {
	t.Helper()
	cfg, err := config.Load(cfgFile, env, registry.HandlerNames(registry.NewCatalog()))
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
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return started{Server: srv, logs: logs}
}

var _ = logrus.New

func contextWithTimeout(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}
