package app_test

import (
	"context"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portcullis-proxy/portcullis/internal/app"
)

// Rules repositories fetched over https use the configuration's one
// http_client, as every handler does: with http_client.ca_file naming the
// private CA of the repository's certificate the rules load and serve; a
// configuration reload that drops the ca_file fetches them with the new
// client, which does not trust the repository, so the reload is refused
// and the last good rules keep serving.
func TestRulesRepositoriesUseTheConfiguredHTTPClient(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "upstream") }))
	defer up.Close()
	rules := func(path string) string {
		return fmt.Sprintf("- id: r\n  match: {url: \"http://<[^/]+>%s\", methods: [GET]}\n  authenticators: [{handler: anonymous}]\n  authorizer: {handler: allow}\n  mutators: [{handler: noop}]\n  upstream: {url: %q}\n", path, up.URL)
	}
	var fetched atomic.Int64
	var doc atomic.Value
	doc.Store(rules("/first"))
	repo := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetched.Add(1)
		io.WriteString(w, doc.Load().(string))
	}))
	repo.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshakes are expected
	repo.StartTLS()
	defer repo.Close()

	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: repo.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "portcullis.yml")
	config := func(httpClient string) string {
		return "serve:\n  proxy: {host: 127.0.0.1, port: 0}\n  api: {host: 127.0.0.1, port: 0}\n  prometheus: {host: 127.0.0.1, port: 0}\n" +
			"access_rules:\n  repositories: [\"" + repo.URL + "/rules.yml\"]\n  poll_interval: 1h\n" + httpClient +
			"authenticators: {anonymous: {enabled: true}}\nauthorizers: {allow: {enabled: true}}\nmutators: {noop: {enabled: true}}\n"
	}
	if err := os.WriteFile(file, []byte(config("http_client:\n  ca_file: "+ca+"\n  connect_timeout: 2s\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	srv, err := app.Open(file, nil, io.Discard)
	if err != nil {
		t.Fatalf("start-up with an https repository and its CA in http_client.ca_file: %v", err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	}()
	get := func(path string) int {
		t.Helper()
		res, err := http.Get("http://" + srv.Addr("proxy") + path)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	if fetched.Load() == 0 {
		t.Fatal("the rules were loaded without fetching the https repository")
	}
	if st := get("/first"); st != http.StatusOK {
		t.Fatalf("GET /first under the fetched rules = %d, want 200", st)
	}

	doc.Store(rules("/second"))
	if err := os.WriteFile(file, []byte(config("")), 0o600); err != nil {
		t.Fatal(err)
	}
	before := fetched.Load()
	err = srv.ReloadConfig(context.Background())
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("reload without http_client.ca_file: %v, want the repository's certificate refused", err)
	}
	if fetched.Load() != before {
		t.Errorf("the repository answered %d fetches of a client that does not trust it", fetched.Load()-before)
	}
	if st := get("/first"); st != http.StatusOK {
		t.Errorf("GET /first after the refused reload = %d, want 200 (the last good rules)", st)
	}
	if st := get("/second"); st != http.StatusNotFound {
		t.Errorf("GET /second after the refused reload = %d, want 404", st)
	}
}
