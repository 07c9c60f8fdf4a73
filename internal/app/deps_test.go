package app_test

import (
	"context"
	"encoding/pem"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/portcullis-proxy/portcullis/config"
	"github.com/portcullis-proxy/portcullis/internal/app"
	"github.com/portcullis-proxy/portcullis/internal/registry"
)

// http_client.ca_file reaches the client handlers are given: a service
// whose certificate that CA signed is reachable with it, and not without
// it; a file without certificates is an error at its key's line.
func TestHandlerDepsTrustTheConfiguredCA(t *testing.T) {
	svc := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	svc.Config.ErrorLog = log.New(io.Discard, "", 0)
	svc.StartTLS()
	t.Cleanup(svc.Close)
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: svc.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty.pem")
	if err := os.WriteFile(empty, []byte("no certificates here\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	deps := func(doc string) (*http.Client, error) {
		t.Helper()
		file := filepath.Join(dir, "portcullis.yml")
		cfg, err := config.LoadData(file, []byte(doc), nil, registry.HandlerNames(registry.NewCatalog()))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		t.Cleanup(cancel)
		d, err := app.HandlerDeps(ctx, cfg, nil)
		return d.HTTPClient, err
	}
	get := func(c *http.Client) error {
		res, err := c.Get(svc.URL)
		if err == nil {
			res.Body.Close()
		}
		return err
	}

	trusting, err := deps("http_client:\n  ca_file: " + ca + "\n  connect_timeout: 2s\n")
	if err != nil {
		t.Fatal(err)
	}
	if err := get(trusting); err != nil {
		t.Errorf("with http_client.ca_file: %v", err)
	}
	plain, err := deps("log: {level: info}\n")
	if err != nil {
		t.Fatal(err)
	}
	if err := get(plain); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("without http_client.ca_file: %v, want a certificate error", err)
	}
	if _, err := deps("log: {level: info}\nhttp_client:\n  ca_file: " + empty + "\n"); err == nil ||
		!strings.Contains(err.Error(), "portcullis.yml:3: http_client.ca_file: no PEM certificates found") {
		t.Errorf("a CA file without certificates: %v", err)
	}
}
