package kratos

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/portcullis-proxy/portcullis/testsupport/kratostest"
	"github.com/portcullis-proxy/portcullis/testsupport/servertest"
	"github.com/portcullis-proxy/portcullis/testsupport/wsecho"
)

// kratosShared is the real Ory Kratos most tests of this package use.
var kratosShared = &kratostest.Shared{}

func TestMain(m *testing.M) { kratostest.RunMain(m, kratosShared) }

// wsTokenPrefix is the Sec-WebSocket-Protocol prefix that carries a session
// token for browsers, which cannot set headers on a WebSocket.
const wsTokenPrefix = "portcullis.token."

// seen is what the upstream received on one request.
type seen struct {
	Path    string   `json:"path"`
	Query   string   `json:"query"`
	User    string   `json:"user"`
	Email   string   `json:"email"`
	Auth    string   `json:"auth"`
	Cookie  string   `json:"cookie"`
	Offered []string `json:"offered,omitempty"`
}

// upstream is the protected service: over HTTP it answers with what it
// received; over WebSocket it records the handshake and echoes messages.
type upstream struct {
	*httptest.Server
	mu   sync.Mutex
	wsHS []seen
}

func newUpstream(t testing.TB) *upstream {
	u := &upstream{}
	echo := wsecho.Handler(wsecho.Options{Protocol: func(p string) bool { return p == "chat.v1" }, OnUpgrade: u.record})
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
			echo.ServeHTTP(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(received(r))
	}))
	t.Cleanup(u.Close)
	return u
}

func received(r *http.Request) seen {
	return seen{
		Path: r.URL.Path, Query: r.URL.RawQuery,
		User: r.Header.Get("X-User"), Email: r.Header.Get("X-Email"),
		Auth: r.Header.Get("Authorization"), Cookie: r.Header.Get("Cookie"),
	}
}

// record keeps what an upgrade request carried, before the 101 goes out, so
// a client whose dial returned finds it.
func (u *upstream) record(r *http.Request) {
	s := received(r)
	for _, line := range r.Header.Values("Sec-WebSocket-Protocol") {
		for _, p := range strings.Split(line, ",") {
			s.Offered = append(s.Offered, strings.TrimSpace(p))
		}
	}
	u.mu.Lock()
	u.wsHS = append(u.wsHS, s)
	u.mu.Unlock()
}

func (u *upstream) handshakes() []seen {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]seen(nil), u.wsHS...)
}

const rulesTemplate = `
- id: web
  match: {url: "http://<[^/]+>/web/<.*>", methods: [GET, POST]}
  authenticators: [{handler: cookie_session}]
  authorizer: {handler: allow}
  mutators: [{handler: header}]
  errors: [{handler: redirect}, {handler: www_authenticate}]
  upstream: {url: %[1]q}
- id: web-uncached
  match: {url: "http://<[^/]+>/uncached/<.*>", methods: [GET]}
  authenticators: [{handler: cookie_session, config: {cache: {enabled: false}}}]
  authorizer: {handler: allow}
  mutators: [{handler: header}]
  upstream: {url: %[1]q}
- id: api
  match: {url: "http://<[^/]+>/api/<.*>", methods: [GET]}
  authenticators: [{handler: bearer_token, config: {accept_x_session_token: true}}]
  authorizer: {handler: allow}
  mutators: [{handler: header}]
  errors: [{handler: www_authenticate}]
  upstream: {url: %[1]q}
- id: api-query
  match: {url: "http://<[^/]+>/q/<.*>", methods: [GET]}
  authenticators: [{handler: bearer_token, config: {token_from: {query_parameter: access_token}}}]
  authorizer: {handler: allow}
  mutators: [{handler: header}]
  upstream: {url: %[1]q}
- id: api-cookie
  match: {url: "http://<[^/]+>/c/<.*>", methods: [GET]}
  authenticators: [{handler: bearer_token, config: {token_from: {cookie: session_token}}}]
  authorizer: {handler: allow}
  mutators: [{handler: header}]
  upstream: {url: %[1]q}
- id: ws
  match: {url: "http://<[^/]+>/ws/<.*>", methods: [GET]}
  authenticators:
    - {handler: cookie_session}
    - {handler: bearer_token, config: {token_from: {websocket_protocol: %[2]q}}}
  authorizer: {handler: allow}
  mutators: [{handler: header}]
  upstream: {url: %[1]q}
  websocket: {revalidate_every: 200ms, close_grace: 200ms}
- id: admin
  match: {url: "http://<[^/]+>/admin/<.*>", methods: [GET]}
  authenticators: [{handler: anonymous}]
  authorizer: {handler: deny}
  mutators: [{handler: noop}]
  upstream: {url: %[1]q}
- id: ws-query
  match: {url: "http://<[^/]+>/wsq/<.*>", methods: [GET]}
  authenticators:
    - {handler: cookie_session}
    - {handler: bearer_token, config: {token_from: {query_parameter: token}}}
  authorizer: {handler: allow}
  mutators: [{handler: header}]
  errors: [{handler: redirect}]
  upstream: {url: %[1]q}
- id: open
  match: {url: "http://<[^/]+>/open/<.*>", methods: [GET]}
  authenticators: [{handler: anonymous}]
  authorizer: {handler: allow}
  mutators: [{handler: header}]
  upstream: {url: %[1]q}
`

const configTemplate = `
serve:
  proxy: {host: 127.0.0.1, port: 0}
  api: {host: 127.0.0.1, port: 0}
  prometheus: {host: 127.0.0.1, port: 0}
  grpc: {host: 127.0.0.1, port: 0}
authenticators:
  anonymous: {enabled: true}
  cookie_session:
    enabled: true
    config:
      check_session_url: %[1]q
      only: [ory_kratos_session]
      subject_from: identity.id
      extra_from: "@this"
      cache: {ttl: %[3]s}
  bearer_token:
    enabled: true
    config:
      check_session_url: %[1]q
      subject_from: identity.id
      extra_from: "@this"
      cache: {ttl: %[3]s}
authorizers:
  allow: {enabled: true}
  deny: {enabled: true}
mutators:
  noop: {enabled: true}
  header:
    enabled: true
    config:
      headers:
        X-User: "{{ print .Subject }}"
        X-Email: "{{ if .Extra.identity }}{{ print .Extra.identity.traits.email }}{{ end }}"
errors:
  fallback: [json]
  handlers:
    json: {enabled: true}
    redirect:
      enabled: true
      config:
        to: %[2]q
        return_to_query_param: return_to
        when: [{error: [unauthorized, forbidden], request: {header: {accept: [text/html]}}}]
    www_authenticate:
      enabled: true
      config:
        scheme: Bearer
        realm: portcullis
        when: [{error: [unauthorized]}]
`

// startGateway runs portcullis with the rules above against k. cacheTTL is
// the session cache ttl of both session authenticators.
func startGateway(tb testing.TB, k *kratostest.Kratos, up *upstream, cacheTTL string) *servertest.Server {
	tb.Helper()
	return servertest.Start(tb, servertest.Config{
		YAML:  fmt.Sprintf(configTemplate, k.WhoamiURL(), k.PublicURL()+"/self-service/login/browser", cacheTTL),
		Rules: fmt.Sprintf(rulesTemplate, up.URL, wsTokenPrefix),
	})
}

// startShared starts a gateway from the rules above against the package's
// shared Kratos, in front of a new upstream; cacheTTL is as for
// [startGateway].
func startShared(tb testing.TB, cacheTTL string) (*kratostest.Kratos, *upstream, *servertest.Server) {
	tb.Helper()
	k := kratosShared.Get(tb)
	up := newUpstream(tb)
	return k, up, startGateway(tb, k, up, cacheTTL)
}

// echoes sends msg as a text message over the tunnel conn and requires the
// upstream's echo of it within five seconds.
func echoes(conn net.Conn, msg string) error {
	if err := wsutil.WriteClientText(conn, []byte(msg)); err != nil {
		return err
	}
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	got, err := wsutil.ReadServerText(conn)
	if err != nil || string(got) != msg {
		return fmt.Errorf("echo = %q, %v", got, err)
	}
	return nil
}

// noRedirects is a client that shows redirects instead of following them.
var noRedirects = &http.Client{
	Timeout:       10 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// get sends a GET prepared by prep and returns the response (body read)
// and, for a 200 from the upstream (JSON), what the upstream saw.
func get(t testing.TB, url string, prep func(r *http.Request)) (*http.Response, seen) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if prep != nil {
		prep(req)
	}
	res, err := noRedirects.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	var s seen
	if res.StatusCode == http.StatusOK && res.Header.Get("Content-Type") == "application/json" {
		if err := json.Unmarshal(body, &s); err != nil {
			t.Fatalf("upstream answer %q: %v", body, err)
		}
	}
	return res, s
}

// eventually polls cond until it holds or a bounded wait runs out.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not reached", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// wsDial opens a WebSocket through the proxy.
func wsDial(t testing.TB, url string, header http.Header, protocols ...string) (net.Conn, ws.Handshake, error) {
	d := ws.Dialer{Timeout: 5 * time.Second, Protocols: protocols}
	if header != nil {
		d.Header = ws.HandshakeHeaderHTTP(header)
	}
	conn, br, hs, err := d.Dial(context.Background(), url)
	if err != nil {
		return nil, hs, err
	}
	t.Cleanup(func() { conn.Close() })
	if br != nil {
		// Frames the server sent right after the handshake are buffered.
		return bufferedConn{Conn: conn, r: br}, hs, nil
	}
	return conn, hs, nil
}

type bufferedConn struct {
	net.Conn
	r io.Reader
}

func (c bufferedConn) Read(p []byte) (int, error) { return c.r.Read(p) }
