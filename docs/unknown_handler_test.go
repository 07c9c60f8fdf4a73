package docs_test

import (
	"bytes"
	"context"
	"io"
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

// TestUnknownAndDisabledHandlersAsDocumented checks configuration.md's
// statements about handler names portcullis does not know and handlers
// not enabled, against the server as `portcullis serve` opens it: an
// enabled block with an unknown name stops start-up with its key and
// line; a disabled one is warned about and ignored; and a rule naming an
// unknown handler, or a known one that is not enabled, never serves — it
// answers 500 and its upstream is never called (fail closed).
func TestUnknownAndDisabledHandlersAsDocumented(t *testing.T) {
	doc, err := os.ReadFile("configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	text := strings.Join(strings.Fields(string(doc)), " ")
	for _, says := range []string{
		"An **enabled** block for a handler name portcullis does not know stops start-up with its key and line",
		"with `enabled: false` the block is warned about and ignored",
		"a rule naming a handler portcullis does not know, like one naming a disabled handler, answers every request it matches with 500",
		"a rule naming a disabled one never serves",
	} {
		if !strings.Contains(text, says) {
			t.Errorf("configuration.md does not say %q", says)
		}
	}
	if strings.Contains(text, "even with `enabled: false`") {
		t.Error("configuration.md says an unknown handler stops start-up even when it is disabled; it is warned about and ignored")
	}

	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	var upstreamCalls atomic.Int64
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		upstreamCalls.Add(1)
		io.WriteString(w, "served")
	}))
	defer up.Close()
	rule := func(id, authenticator string) string {
		return "- id: " + id + "\n  match: {url: \"http://<[^/]+>/" + id + "\", methods: [GET]}\n" +
			"  authenticators: [{handler: " + authenticator + "}]\n  authorizer: {handler: allow}\n" +
			"  mutators: [{handler: noop}]\n  upstream: {url: \"" + up.URL + "\"}\n"
	}
	rulesFile := write("rules.yml", rule("open", "anonymous")+rule("unknown", "kerberos")+rule("disabled", "cookie_session"))
	const serve = "serve:\n  proxy: {host: 127.0.0.1, port: 0}\n  api: {host: 127.0.0.1, port: 0}\n  prometheus: {host: 127.0.0.1, port: 0}\n"
	config := func(kerberos string) string {
		return serve + "access_rules:\n  repositories: [\"file://" + rulesFile + "\"]\n" +
			"authenticators:\n  anonymous: {enabled: true}\n  cookie_session: {enabled: false}\n  kerberos: {enabled: " + kerberos + "}\n" +
			"authorizers:\n  allow: {enabled: true}\nmutators:\n  noop: {enabled: true}\n"
	}

	enabled := write("enabled.yml", config("true"))
	var log bytes.Buffer
	if srv, err := app.Open(enabled, nil, &log); err == nil {
		srv.Shutdown(context.Background())
		t.Fatal("an enabled block for an unknown handler did not stop start-up")
	} else if !strings.Contains(err.Error(), enabled+":") || !strings.Contains(err.Error(), "authenticators.kerberos") ||
		!strings.Contains(err.Error(), `unknown authenticator "kerberos"`) {
		t.Errorf("start-up error %q, want the file:line, the key authenticators.kerberos and the unknown name", err)
	}

	log.Reset()
	srv, err := app.Open(write("disabled.yml", config("false")), nil, &log)
	if err != nil {
		t.Fatalf("a disabled block for an unknown handler stopped start-up: %v", err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	}()
	if !strings.Contains(log.String(), `authenticators.kerberos: unknown handler \"kerberos\"`) {
		t.Errorf("no warning about the disabled unknown handler in the log:\n%s", log.String())
	}
	get := func(path string) int {
		t.Helper()
		res, err := http.Get("http://" + srv.Addr("proxy") + path)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	if st := get("/open"); st != http.StatusOK || upstreamCalls.Load() != 1 {
		t.Fatalf("the rule with enabled handlers: %d after %d upstream calls, want 200 after 1", st, upstreamCalls.Load())
	}
	for _, path := range []string{"/unknown", "/disabled"} {
		if st := get(path); st != http.StatusInternalServerError {
			t.Errorf("GET %s (a rule naming a handler that is %s) = %d, want 500", path, strings.TrimPrefix(path, "/"), st)
		}
	}
	if n := upstreamCalls.Load(); n != 1 {
		t.Errorf("the upstream was called %d times, want only the once for /open", n)
	}
}
