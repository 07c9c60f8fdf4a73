package app_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/portcullis-proxy/portcullis/config"
	"github.com/portcullis-proxy/portcullis/internal/app"
	"github.com/portcullis-proxy/portcullis/testsupport/handlertest"
	"github.com/portcullis-proxy/portcullis/testsupport/servertest"
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

	ruleText := func(id, subject string) string {
		return handlertest.Rule{ID: id, URL: "http://<[^/]+>/<.*>", Authenticators: []string{"anonymous: {subject: " + subject + "}"}, Mutators: []string{"header"}, Upstream: upstream.URL}.YAML()
	}
	srv := servertest.Start(t, servertest.Config{YAML: `
authenticators: {anonymous: {enabled: true}}
authorizers: {allow: {enabled: true}}
mutators:
  header:
    enabled: true
    config: {headers: {X-User: "{{ print .Subject }}"}}
`, Rules: ruleText("v1", "first"), PollInterval: 20 * time.Millisecond})
	proxyURL, apiURL := srv.URL(), srv.APIURL()

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
	srv.ReplaceRules(t, ruleText("v2", "second"))
	waitUntil(t, func() bool { return body(proxyURL+"/x") == "200 hello second" })

	srv.ReplaceRules(t, ruleText("v3", "third")+"  broken: [\n")
	waitUntil(t, func() bool { return strings.Contains(srv.Logs(), "last good rules keep serving") })
	if got := body(proxyURL + "/x"); got != "200 hello second" {
		t.Errorf("after a broken edit: %q, want the last good rules", got)
	}
	if !strings.Contains(body(apiURL+"/rules"), `"id":"v2"`) {
		t.Error("GET /rules does not list the serving rule")
	}
	m := body(srv.MetricsURL())
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
