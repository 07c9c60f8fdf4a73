package config_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/portcullis-proxy/portcullis/config"
)

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "c.yml")
	if err := os.WriteFile(f, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// Oathkeeper's tracing keys load; the environment overrides them as any
// other key; serve.grpc is off unless a port is set.
func TestTracingAndGRPCKeys(t *testing.T) {
	f := writeConfig(t, `
serve:
  grpc: {host: 127.0.0.1, port: 4457}
tracing:
  provider: otel
  service_name: edge
  providers:
    otlp:
      server_url: collector:4318
      insecure: true
      sampling: {sampling_ratio: 0.25}
`)
	c, err := config.Load(f, []string{"TRACING_TRUST_INCOMING=true"}, names)
	if err != nil {
		t.Fatal(err)
	}
	tr := c.Tracing
	if tr.Provider != "otel" || tr.ServiceName != "edge" || tr.Providers.OTLP.ServerURL != "collector:4318" || !tr.Providers.OTLP.Insecure ||
		tr.Providers.OTLP.Sampling.SamplingRatio == nil || *tr.Providers.OTLP.Sampling.SamplingRatio != 0.25 || !tr.TrustIncoming {
		t.Errorf("tracing = %+v", tr)
	}
	if c.Serve.GRPC.Addr() != "127.0.0.1:4457" {
		t.Errorf("serve.grpc = %s", c.Serve.GRPC.Addr())
	}
	if len(c.Warnings) != 0 {
		t.Errorf("warnings %v", c.Warnings)
	}

	c, err = config.Load("", nil, names)
	if err != nil {
		t.Fatal(err)
	}
	if c.Tracing.Provider != "" || c.Tracing.ServiceName != "portcullis" || c.Tracing.Providers.OTLP.Sampling.SamplingRatio != nil || c.Serve.GRPC.Port >= 0 {
		t.Errorf("defaults: tracing %+v, serve.grpc.port %d", c.Tracing, c.Serve.GRPC.Port)
	}
}

// Another of Oathkeeper's providers loads, with a warning, and leaves
// tracing off; a sampling ratio outside 0..1 is an error with its line.
func TestTracingProviderWarningsAndErrors(t *testing.T) {
	c, err := config.Load(writeConfig(t, "tracing:\n  provider: jaeger\n  providers:\n    jaeger: {sampling: {server_url: http://j:5778}}\n"), nil, names)
	if err != nil {
		t.Fatal(err)
	}
	if c.Tracing.Provider != "" {
		t.Errorf("provider %q, want tracing off", c.Tracing.Provider)
	}
	if w := strings.Join(c.Warnings, "\n"); !strings.Contains(w, `tracing.provider "jaeger" is not supported`) || !strings.Contains(w, "tracing.providers.jaeger") {
		t.Errorf("warnings %q", w)
	}
	f := writeConfig(t, "tracing:\n  provider: otel\n  providers:\n    otlp:\n      sampling:\n        sampling_ratio: 2\n")
	_, err = config.Load(f, nil, names)
	if err == nil || !strings.Contains(err.Error(), "sampling_ratio' must be between 0 and 1") || !strings.HasPrefix(err.Error(), f+":") {
		t.Errorf("err = %v, want the key, the bound and the file:line", err)
	}
}
