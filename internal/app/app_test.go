package app_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/portcullis-proxy/portcullis/config"
	"github.com/portcullis-proxy/portcullis/internal/app"
	"github.com/portcullis-proxy/portcullis/internal/registry"
)

// TestServeOathkeeperFiles starts the whole server from an Oathkeeper
// configuration and rules file, checks the proxy and the decision API, then
// edits the rules file and sees the change served, and breaks it and sees
// the last good rules keep serving.
func TestServeOathkeeperFiles(t *testing.T) {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello %s", r.Header.Get("X-User"))
	}))
	defer upstream.Close()

	dir := t.TempDir()
	rulesFile := filepath.Join(dir, "access-rules.yml")
	ruleText := func(id, subject string) string {
		return fmt.Sprintf("- id: %s\n  match: {url: \"http://<[^/]+>/<.*>\", methods: [GET]}\n  authenticators: [{handler: anonymous, config: {subject: %s}}]\n  authorizer: {handler: allow}\n  mutators: [{handler: header}]\n  upstream: {url: %q}\n", id, subject, upstream.URL)
	}
	os.WriteFile(rulesFile, []byte(ruleText("v1", "first")), 0o600)
	cfgFile := filepath.Join(dir, "oathkeeper.yml")
	os.WriteFile(cfgFile, []byte(fmt.Sprintf(`
serve:
  proxy: {host: 127.0.0.1, port: 0}
  api: {host: 127.0.0.1, port: 0}
  prometheus: {host: 127.0.0.1, port: 0}
access_rules:
  poll_interval: 20ms
  repositories: ["file://%s"]
authenticators: {anonymous: {enabled: true}}
authorizers: {allow: {enabled: true}}
mutators:
  header:
    enabled: true
    config: {headers: {X-User: "{{ print .Subject }}"}}
`, rulesFile)), 0o600)

	cfg, err := config.Load(cfgFile, nil, registry.HandlerNames(registry.NewCatalog()))
	if err != nil {
		t.Fatal(err)
	}
	log := logrus.New()
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
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Error(err)
		}
	}()
	proxyURL, apiURL := "http://"+srv.Addr("proxy"), "http://"+srv.Addr("api")

	body := func(url string) string {
		res, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return fmt.Sprintf("%d %s", res.StatusCode, b)
	}
	if got := body(proxyURL + "/x"); got != "200 hello first" {
		t.Errorf("proxy = %q", got)
	}
	res, err := http.Get(apiURL + "/decisions/x")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 || res.Header.Get("X-User") != "first" {
		t.Errorf("decision = %d %q", res.StatusCode, res.Header.Get("X-User"))
	}

	// Edits replace the file in one step (write, then rename): a poll
	// that lands between os.WriteFile's truncation and its write would
	// read, twice, an empty document — a valid, empty rule set.
	replace := func(content string) {
		tmp := rulesFile + ".tmp"
		if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, rulesFile); err != nil {
			t.Fatal(err)
		}
	}
	replace(ruleText("v2", "second"))
	waitUntil(t, func() bool { return body(proxyURL+"/x") == "200 hello second" })

	replace(ruleText("v3", "third") + "  broken: [\n")
	waitUntil(t, func() bool { return strings.Contains(logs.String(), "last good rules keep serving") })
	if got := body(proxyURL + "/x"); got != "200 hello second" {
		t.Errorf("after a broken edit: %q, want the last good rules", got)
	}
	if !strings.Contains(body(apiURL+"/rules"), `"id":"v2"`) {
		t.Error("GET /rules does not list the serving rule")
	}
	m := body("http://" + srv.Addr("prometheus") + "/metrics")
	for _, want := range []string{
		`portcullis_requests_total{decision="allowed",frontend="proxy",rule="v2",status="200"}`,
		`portcullis_requests_total{decision="allowed",frontend="decisions",rule="v1",status="200"}`,
		`portcullis_rules_reloads_total{result="failed"} 1`,
		`portcullis_rules_loaded 1`,
		`portcullis_request_duration_seconds_bucket{frontend="proxy",rule="v1"`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

func TestUnknownHandlerInConfigIsAStartupError(t *testing.T) {
	cfg := &config.Config{Authenticators: map[string]config.HandlerConfig{"kerberos": {Enabled: true}}}
	cfg.AccessRules.MatchingStrategy = "regexp"
	cfg.Log.Format = "text"
	_, err := app.New(cfg, logrus.New())
	if err == nil || !strings.Contains(err.Error(), "authenticators.kerberos") {
		t.Errorf("error = %v, want it to name authenticators.kerberos", err)
	}
}
