package kratos

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/portcullis-proxy/portcullis/testsupport/handlertest"
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

// gatewayRules are the rules of the gateway tests, each at its own path
// prefix in front of upstream and naming the subject in X-User, but for
// the denying admin rule: browser pages with a login redirect (cached and
// uncached sessions), session tokens from each carrier (X-Session-Token,
// query, cookie), tunnels taking a cookie or a token (in the subprotocols
// after tokenPrefix, or in the query), and an anonymous open path.
func gatewayRules(upstream, tokenPrefix string) string {
	at := func(prefix string) string { return "http://<[^/]+>/" + prefix + "/<.*>" }
	rs := []handlertest.Rule{
		{ID: "web", URL: at("web"), Methods: []string{"GET", "POST"}, Authenticators: []string{"cookie_session"},
			More: []string{"errors: [{handler: redirect}, {handler: www_authenticate}]"}},
		{ID: "web-uncached", URL: at("uncached"), Authenticators: []string{"cookie_session: {cache: {enabled: false}}"}},
		{ID: "api", URL: at("api"), Authenticators: []string{"bearer_token: {accept_x_session_token: true}"},
			More: []string{"errors: [{handler: www_authenticate}]"}},
		{ID: "api-query", URL: at("q"), Authenticators: []string{"bearer_token: {token_from: {query_parameter: access_token}}"}},
		{ID: "api-cookie", URL: at("c"), Authenticators: []string{"bearer_token: {token_from: {cookie: session_token}}"}},
		{ID: "ws", URL: at("ws"), Authenticators: []string{"cookie_session", "bearer_token: {token_from: {websocket_protocol: " + strconv.Quote(tokenPrefix) + "}}"},
			More: []string{"websocket: {revalidate_every: 200ms, close_grace: 200ms}"}},
		{ID: "admin", URL: at("admin"), Authenticators: []string{"anonymous"}, Authorizer: "deny", Mutators: []string{"noop"}},
		{ID: "ws-query", URL: at("wsq"), Authenticators: []string{"cookie_session", "bearer_token: {token_from: {query_parameter: token}}"},
			More: []string{"errors: [{handler: redirect}]"}},
		{ID: "open", URL: at("open"), Authenticators: []string{"anonymous"}},
	}
	for i := range rs {
		rs[i].Upstream = upstream
		if rs[i].Mutators == nil {
			rs[i].Mutators = []string{"header"}
		}
	}
	return handlertest.Rules(rs...)
}

// gatewayConfig is laid over both Kratos session authenticators
// ([servertest.KratosSessions]); %[1]q is the login page, %[2]s the
// session cache ttl of both.
const gatewayConfig = `
serve:
  proxy: {host: 127.0.0.1, port: 0}
  api: {host: 127.0.0.1, port: 0}
  prometheus: {host: 127.0.0.1, port: 0}
  grpc: {host: 127.0.0.1, port: 0}
authenticators:
  anonymous: {enabled: true}
  cookie_session: {config: {extra_from: "@this", cache: {ttl: %[2]s}}}
  bearer_token: {config: {extra_from: "@this", cache: {ttl: %[2]s}}}
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
        to: %[1]q
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
		YAML: servertest.Merge(tb, servertest.KratosSessions(k.WhoamiURL(), "cookie_session", "bearer_token"),
			fmt.Sprintf(gatewayConfig, k.PublicURL()+"/self-service/login/browser", cacheTTL)),
		Rules: gatewayRules(up.URL, wsTokenPrefix),
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
