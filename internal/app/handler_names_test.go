package app_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"

	"github.com/portcullis-proxy/portcullis/config"
	"github.com/portcullis-proxy/portcullis/config/configtest"
	"github.com/portcullis-proxy/portcullis/internal/app"
	"github.com/portcullis-proxy/portcullis/testsupport/servertest"
)

// As docs/configuration.md says: an enabled block for a handler name
// portcullis does not know stops start-up with its key and line; with
// enabled: false it is warned about and ignored; and a rule naming a
// handler portcullis does not know, or a known one that is not enabled,
// never serves — it answers 500 and its upstream is never called.
func TestUnknownAndDisabledHandlersNeverServe(t *testing.T) {
	handlers := func(kerberos string) string {
		return "authenticators:\n  anonymous: {enabled: true}\n  cookie_session: {enabled: false}\n  kerberos: {enabled: " + kerberos + "}\n" +
			"authorizers: {allow: {enabled: true}}\nmutators: {noop: {enabled: true}}\n"
	}
	file := t.TempDir() + "/portcullis.yml"
	cfg, err := config.LoadData(file, []byte(handlers("true")), nil, configtest.Names())
	if err != nil {
		t.Fatal(err)
	}
	if srv, err := app.New(cfg, logrus.New()); err == nil {
		srv.Shutdown(t.Context())
		t.Fatal("an enabled block for an unknown handler did not stop start-up")
	} else if !strings.Contains(err.Error(), file+":4: authenticators.kerberos") || !strings.Contains(err.Error(), `unknown authenticator "kerberos"`) {
		t.Errorf("start-up error %q, want the key authenticators.kerberos at its file:line and the unknown name", err)
	}

	up, calls := countingUpstream(t)
	named := func(id, authenticator string) string {
		return strings.Replace(pathRule(id, up.URL, "allow", "noop", ""), "handler: anonymous", "handler: "+authenticator, 1)
	}
	s := servertest.Start(t, servertest.Config{YAML: handlers("false"),
		Rules: named("open", "anonymous") + named("unknown", "kerberos") + named("disabled", "cookie_session")})
	if !strings.Contains(s.Logs(), `authenticators.kerberos: unknown handler \"kerberos\"`) {
		t.Errorf("no warning about the disabled unknown handler in the log:\n%s", s.Logs())
	}
	if st := statusOf(t, s.URL()+"/open"); st != http.StatusOK || calls.Load() != 1 {
		t.Fatalf("the rule with enabled handlers: %d after %d upstream calls, want 200 after 1", st, calls.Load())
	}
	for _, path := range []string{"/unknown", "/disabled"} {
		if st := statusOf(t, s.URL()+path); st != http.StatusInternalServerError {
			t.Errorf("GET %s (a rule naming a handler that is %s) = %d, want 500", path, path[1:], st)
		}
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("the upstream was called %d times, want only the once for /open", n)
	}
}
