package servertest_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/portcullis-proxy/portcullis/testsupport/servertest"
)

const handlers = `
authenticators: {anonymous: {enabled: true, config: {subject: guest}}}
authorizers: {allow: {enabled: true}, deny: {enabled: true}}
mutators: {header: {enabled: true, config: {headers: {X-User: "{{ print .Subject }}"}}}}
`

func rule(authorizer, upstream string) string {
	return fmt.Sprintf("- id: r\n  match: {url: \"http://<[^/]+>/<.*>\", methods: [GET]}\n  authenticators: [{handler: anonymous}]\n  authorizer: {handler: %s}\n  mutators: [{handler: header}]\n  upstream: {url: %q}\n", authorizer, upstream)
}

func upstream(t *testing.T) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hello "+r.Header.Get("X-User"))
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	return servertest.Fetch(t, req)
}

// eventually polls cond for up to 10s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not reached", what)
		}
	}
}

// Both modes serve the configuration on loopback with the added listeners
// and rules block, answer on the proxy, the decision API and /metrics,
// apply replaced rules, keep the log and stop gracefully.
func TestStart(t *testing.T) {
	up := upstream(t)
	for _, binary := range []bool{false, true} {
		t.Run(fmt.Sprintf("binary=%t", binary), func(t *testing.T) {
			s := servertest.Start(t, servertest.Config{YAML: handlers, Rules: rule("allow", up), PollInterval: 20 * time.Millisecond, Binary: binary, WaitReady: true})
			if (s.App() != nil) == binary {
				t.Errorf("App() = %v with Binary %t", s.App(), binary)
			}
			if st, body := get(t, s.URL()+"/x"); st != 200 || body != "hello guest" {
				t.Errorf("proxy: %d %q", st, body)
			}
			res, err := http.Get(s.DecisionsURL() + "/x")
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			if res.StatusCode != 200 || res.Header.Get("X-User") != "guest" {
				t.Errorf("decision: %d X-User %q", res.StatusCode, res.Header.Get("X-User"))
			}
			if st, body := get(t, s.MetricsURL()); st != 200 || !strings.Contains(body, "portcullis_requests_total") {
				t.Errorf("metrics: %d", st)
			}
			s.ReplaceRules(t, rule("deny", up))
			eventually(t, "the replaced rules", func() bool { st, _ := get(t, s.URL()+"/x"); return st == http.StatusForbidden })
			if !strings.Contains(s.Logs(), "listening") {
				t.Errorf("the log lacks the listeners:\n%s", s.Logs())
			}
			if binary {
				s.Signal(t, syscall.SIGTERM)
			} else {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				if err := s.Stop(ctx); err != nil {
					t.Errorf("Stop: %v", err)
				}
			}
			select {
			case <-s.Done():
			case <-time.After(15 * time.Second):
				t.Fatal("still running 15s after the stop")
			}
			if err := s.Err(); err != nil {
				t.Errorf("stopped with %v, want nil", err)
			}
			if _, err := http.Get(s.URL() + "/x"); err == nil {
				t.Error("the proxy still answers after the stop")
			}
		})
	}
}

// A configuration file is served as written: its own serve block and
// rules, with environment overrides.
func TestStartFile(t *testing.T) {
	up := upstream(t)
	first := servertest.Start(t, servertest.Config{YAML: handlers, Rules: rule("allow", up)})
	s := servertest.Start(t, servertest.Config{
		File: first.ConfigFile(),
		Env:  []string{"AUTHENTICATORS_ANONYMOUS_CONFIG_SUBJECT=someone"},
	})
	if st, body := get(t, s.URL()+"/x"); st != 200 || body != "hello someone" {
		t.Errorf("proxy: %d %q, want the override's subject", st, body)
	}
	if s.URL() == first.URL() {
		t.Error("two servers on one address: port 0 was not the system's pick")
	}
}
