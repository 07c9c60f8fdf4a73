package app_test

import (
	"context"
	"crypto/tls"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/portcullis-proxy/portcullis/testsupport/servertest"
)

// statusOf is the status a GET of url answers.
func statusOf(t *testing.T, url string) int {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	return res.StatusCode
}

// Rules repositories fetched over https use the configuration's one
// http_client, as every handler does: with http_client.ca_file naming the
// private CA of the repository's certificate the rules load and serve; a
// configuration reload that drops the ca_file fetches them with the new
// client, which does not trust the repository, so the reload is refused
// and the last good rules keep serving.
func TestRulesRepositoriesUseTheConfiguredHTTPClient(t *testing.T) {
	up, _ := countingUpstream(t)
	var doc atomic.Value
	doc.Store(pathRule("first", up.URL, "allow", "noop", ""))
	var fetched atomic.Int64
	repo := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetched.Add(1)
		io.WriteString(w, doc.Load().(string))
	}))
	certFile, keyFile, _ := selfSigned(t, t.TempDir())
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	repo.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	repo.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshakes are expected
	repo.StartTLS()
	defer repo.Close()

	trust := "http_client:\n  ca_file: " + certFile + "\n  connect_timeout: 2s\n"
	s := servertest.Start(t, servertest.Config{YAML: "access_rules:\n  repositories: [\"" + repo.URL + "/rules.yml\"]\n  poll_interval: 1h\n" + trust +
		"authenticators: {anonymous: {enabled: true}}\nauthorizers: {allow: {enabled: true}}\nmutators: {noop: {enabled: true}}\n"})
	if fetched.Load() == 0 {
		t.Fatal("the rules were loaded without fetching the https repository")
	}
	if st := statusOf(t, s.URL()+"/first"); st != http.StatusOK {
		t.Fatalf("GET /first under the fetched rules = %d, want 200", st)
	}

	doc.Store(pathRule("second", up.URL, "allow", "noop", ""))
	cfg, err := os.ReadFile(s.ConfigFile())
	if err != nil {
		t.Fatal(err)
	}
	servertest.ReplaceFile(t, s.ConfigFile(), strings.Replace(string(cfg), trust, "", 1))
	before := fetched.Load()
	if err := s.App().ReloadConfig(context.Background()); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("reload without http_client.ca_file: %v, want the repository's certificate refused", err)
	}
	if fetched.Load() != before {
		t.Errorf("the repository answered %d fetches of a client that does not trust it", fetched.Load()-before)
	}
	if st := statusOf(t, s.URL()+"/first"); st != http.StatusOK {
		t.Errorf("GET /first after the refused reload = %d, want 200 (the last good rules)", st)
	}
	if st := statusOf(t, s.URL()+"/second"); st != http.StatusNotFound {
		t.Errorf("GET /second after the refused reload = %d, want 404", st)
	}
}
