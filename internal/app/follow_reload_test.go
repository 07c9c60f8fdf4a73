package app_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/portcullis-proxy/portcullis/testsupport/handlertest"
	"github.com/portcullis-proxy/portcullis/testsupport/servertest"
	"github.com/portcullis-proxy/portcullis/testsupport/wsecho"
)

// pathRule is a rule for an anonymous tunnel at /<id> to upstream, with
// the given authorizer, mutator and websocket block.
func pathRule(id, upstream, authorizer, mutator, websocket string) string {
	r := handlertest.Rule{ID: id, URL: "http://<[^/]+>/" + id, Authorizer: authorizer, Mutators: []string{mutator}, Upstream: upstream}
	if websocket != "" {
		r.More = []string{"websocket: " + websocket}
	}
	return r.YAML()
}

// openTunnel dials a WebSocket through the proxy and checks that it echoes.
func openTunnel(t *testing.T, s *servertest.Server, path string) net.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, _, _, err := ws.Dial(ctx, "ws://"+s.Addr("proxy")+path)
	if err != nil {
		t.Fatalf("dial %s: %v", path, err)
	}
	t.Cleanup(func() { conn.Close() })
	if err := echoes(conn, "hello "+path); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return conn
}

// echoes sends msg and reads it back.
func echoes(conn net.Conn, msg string) error {
	if err := wsutil.WriteClientText(conn, []byte(msg)); err != nil {
		return err
	}
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	got, err := wsutil.ReadServerText(conn)
	if err != nil {
		return fmt.Errorf("echo of %q: %w", msg, err)
	}
	if string(got) != msg {
		return fmt.Errorf("echo = %q, want %q", got, msg)
	}
	return nil
}

// closedWith reads until the proxy's Close frame arrives (within d) and
// returns it.
func closedWith(t *testing.T, conn net.Conn, d time.Duration) wsutil.ClosedError {
	t.Helper()
	conn.SetReadDeadline(time.Now().Add(d))
	for {
		_, err := wsutil.ReadServerText(conn)
		var closed wsutil.ClosedError
		if errors.As(err, &closed) {
			return closed
		}
		if err != nil {
			t.Fatalf("no Close frame within %v: %v", d, err)
		}
	}
}

// TestReloadReevaluatesOpenTunnels: five tunnels are open when the rules
// change, once by an edit of the rules file and once by a configuration hot
// reload that points at another rules file and changes the global config
// of the header mutator and of the remote_json authorizer. The tunnel whose
// rule was removed closes at once with 1008 "rule changed"; the one whose
// rule got a shorter max_lifetime lives on under it (closing at the new
// lifetime counted from its upgrade); the one whose rule is unchanged (only
// moved in the file) keeps relaying. The rules edit leaves the other two
// alone; the configuration change closes the one whose rule's effective
// mutator config changed ("rule changed"), and re-checks at once the one
// whose rule's authorizer now asks another decision API, which denies
// ("access revoked", long before its hourly re-check).
func TestReloadReevaluatesOpenTunnels(t *testing.T) {
	up := wsecho.Start(t, wsecho.Options{})
	answer := func(status int) string {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(status) }))
		t.Cleanup(srv.Close)
		return srv.URL
	}
	allows, denies := answer(http.StatusOK), answer(http.StatusForbidden)
	before := pathRule("gone", up.URL, "allow", "noop", "") + pathRule("limits", up.URL, "allow", "noop", "{max_lifetime: 1h}") +
		pathRule("same", up.URL, "allow", "noop", "") + pathRule("mutated", up.URL, "allow", "header", "") +
		pathRule("decided", up.URL, "remote_json", "noop", "{revalidate_every: 1h}")
	after := pathRule("decided", up.URL, "remote_json", "noop", "{revalidate_every: 1h}") + pathRule("mutated", up.URL, "allow", "header", "") +
		pathRule("same", up.URL, "allow", "noop", "") + pathRule("limits", up.URL, "allow", "noop", "{max_lifetime: 3s}")
	handlers := func(header, remote string) string {
		return fmt.Sprintf(`authenticators:
  anonymous: {enabled: true}
authorizers:
  allow: {enabled: true}
  remote_json: {enabled: true, config: {remote: %q, payload: "{}"}}
mutators:
  noop: {enabled: true}
  header: {enabled: true, config: {headers: {X-User: %q}}}
`, remote, header)
	}
	for _, tc := range []struct {
		name        string
		reload      func(t *testing.T, s *servertest.Server)
		mutatedGoes bool
	}{
		{"rules file edited", func(t *testing.T, s *servertest.Server) { s.ReplaceRules(t, after) }, false},
		{"configuration reloaded", func(t *testing.T, s *servertest.Server) {
			rules := filepath.Join(t.TempDir(), "rules-v2.yml")
			servertest.ReplaceFile(t, rules, after)
			servertest.ReplaceFile(t, s.ConfigFile(), fmt.Sprintf("access_rules:\n  poll_interval: 20ms\n  repositories: [%q]\n", "file://"+rules)+
				"serve:\n  proxy: {host: 127.0.0.1, port: 0}\n  api: {host: 127.0.0.1, port: 0}\n  prometheus: {host: 127.0.0.1, port: 0}\n"+
				handlers("{{ print .Subject }}!", denies))
		}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := servertest.Start(t, servertest.Config{YAML: handlers("{{ print .Subject }}", allows), Rules: before, PollInterval: 20 * time.Millisecond})

			opened := time.Now()
			gone, limits, same, mutated, decided := openTunnel(t, s, "/gone"), openTunnel(t, s, "/limits"), openTunnel(t, s, "/same"),
				openTunnel(t, s, "/mutated"), openTunnel(t, s, "/decided")
			tc.reload(t, s)

			if c := closedWith(t, gone, 10*time.Second); c.Code != ws.StatusPolicyViolation || c.Reason != "rule changed" {
				t.Errorf("tunnel of the removed rule: Close %d %q, want 1008 \"rule changed\"", c.Code, c.Reason)
			}
			reloadedAfter := time.Since(opened)
			if tc.mutatedGoes {
				if c := closedWith(t, mutated, 5*time.Second); c.Code != ws.StatusPolicyViolation || c.Reason != "rule changed" {
					t.Errorf("tunnel of the rule whose mutator config changed: Close %d %q, want 1008 \"rule changed\"", c.Code, c.Reason)
				}
				if c := closedWith(t, decided, 5*time.Second); c.Code != ws.StatusPolicyViolation || c.Reason != "access revoked" {
					t.Errorf("tunnel of the rule whose authorizer config changed: Close %d %q, want 1008 \"access revoked\"", c.Code, c.Reason)
				}
			}
			if reloadedAfter >= 3*time.Second {
				t.Fatalf("the reload took %v: the 3s max lifetime could not be told from the old one", reloadedAfter)
			}
			// Under the new limits: still open now, closed at 3s from the
			// upgrade.
			if err := echoes(limits, "still under the old lifetime"); err != nil {
				t.Errorf("tunnel of the changed rule closed before its new max lifetime: %v", err)
			}
			c := closedWith(t, limits, 10*time.Second)
			lived := time.Since(opened)
			if c.Code != ws.StatusPolicyViolation || c.Reason != "max lifetime reached" || lived < 3*time.Second || lived > 6*time.Second {
				t.Errorf("tunnel of the changed rule: Close %d %q after %v, want 1008 \"max lifetime reached\" at about 3s", c.Code, c.Reason, lived)
			}
			if err := echoes(same, "after the reload"); err != nil {
				t.Errorf("tunnel of the unchanged rule: %v", err)
			}
			if !tc.mutatedGoes {
				for _, conn := range []net.Conn{mutated, decided} {
					if err := echoes(conn, "after the reload"); err != nil {
						t.Errorf("tunnel of a rule the edit left alone: %v", err)
					}
				}
			}
			// The closed ones are gone once their close grace is over.
			want := map[bool]int{false: 3, true: 1}[tc.mutatedGoes]
			waitUntil(t, func() bool { return s.App().Tunnels.Active() == want })
		})
	}
}
