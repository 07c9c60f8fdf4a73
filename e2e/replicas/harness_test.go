package replicas

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/portcullis-proxy/portcullis/testsupport/kratostest"
	"github.com/portcullis-proxy/portcullis/testsupport/servertest"
)

var kratosShared = &kratostest.Shared{}

func TestMain(m *testing.M) { kratostest.RunMain(m, kratosShared) }

// adminToken is the admin API token of every replica in these tests.
const adminToken = "test-admin-token-0123456789"

const rulesTemplate = `
- id: chat
  match: {url: "http://<[^/]+>/chat/<.*>", methods: [GET]}
  authenticators: [{handler: cookie_session}, {handler: bearer_token}]
  authorizer: {handler: allow}
  mutators: [{handler: noop}]
  upstream: {url: %[1]q}
  websocket: {revalidate_every: %[3]s, close_grace: 1s}
- id: feed
  match: {url: "http://<[^/]+>/feed/<.*>", methods: [GET]}
  authenticators: [{handler: cookie_session}, {handler: bearer_token}]
  authorizer: {handler: allow}
  mutators: [{handler: noop}]
  upstream: {url: %[1]q}
  websocket: {revalidate_every: %[3]s, close_grace: 1s}
# Kratos's logout endpoints: the session the authenticator finds is
# revoked once Kratos answers with success.
- id: kratos-logout
  match: {url: "http://<[^/]+>/.ory/kratos/public/self-service/logout<(/api)?>", methods: [GET, DELETE]}
  authenticators: [{handler: cookie_session}, {handler: bearer_token}]
  authorizer: {handler: allow}
  mutators: [{handler: noop}]
  upstream: {url: %[2]q, strip_path: /.ory/kratos/public}
  revoke_session_on_success: true
- id: kratos-public
  match: {url: "http://<[^/]+>/.ory/kratos/public/<(self-service/(login|registration|logout/browser)(/.*)?|sessions/whoami)>", methods: [GET, POST]}
  authenticators: [{handler: noop}]
  authorizer: {handler: allow}
  mutators: [{handler: noop}]
  upstream: {url: %[2]q, strip_path: /.ory/kratos/public}
`

const configTemplate = `
serve:
  proxy: {host: 127.0.0.1, port: 0}
  api: {host: 127.0.0.1, port: 0, admin: {token: %[3]q}}
  prometheus: {host: 127.0.0.1, port: 0}
revocation:
  redis: {url: %[2]q}
log: {level: info}
authenticators:
  noop: {enabled: true}
  cookie_session:
    enabled: true
    config:
      check_session_url: %[1]q
      only: [ory_kratos_session]
      subject_from: identity.id
      cache: {ttl: 30s}
  bearer_token:
    enabled: true
    config:
      check_session_url: %[1]q
      token_from: {header: X-Session-Token}
      subject_from: identity.id
      cache: {ttl: 30s}
authorizers:
  allow: {enabled: true}
mutators:
  noop: {enabled: true}
`

type replicaOptions struct {
	whoamiURL, kratosPublic, redisURL, upstream string
	revalidateEvery                             string
}

// startReplica starts a whole portcullis server from files and stops it
// when the test ends.
func startReplica(t testing.TB, o replicaOptions) *servertest.Server {
	t.Helper()
	if o.revalidateEvery == "" {
		o.revalidateEvery = "5m"
	}
	return servertest.Start(t, servertest.Config{
		YAML:  fmt.Sprintf(configTemplate, o.whoamiURL, o.redisURL, adminToken),
		Rules: fmt.Sprintf(rulesTemplate, o.upstream, o.kratosPublic, o.revalidateEvery),
	})
}

// tunnel is a client's WebSocket through a replica.
type tunnel struct {
	net.Conn
	rd io.Reader
}

// dial opens a WebSocket through the replica's proxy with header.
func dial(t testing.TB, r *servertest.Server, path string, header http.Header) (*tunnel, int) {
	t.Helper()
	status := 0
	d := ws.Dialer{Timeout: 10 * time.Second, OnStatusError: func(s int, _ []byte, _ io.Reader) { status = s }}
	d.Header = ws.HandshakeHeaderHTTP(header)
	conn, br, _, err := d.Dial(context.Background(), r.WSURL()+path)
	if err != nil {
		if status == 0 {
			t.Fatalf("dial %s: %v", path, err)
		}
		return nil, status
	}
	t.Cleanup(func() { conn.Close() })
	tu := &tunnel{Conn: conn, rd: conn}
	if br != nil {
		tu.rd = io.MultiReader(br, conn)
	}
	return tu, http.StatusSwitchingProtocols
}

func mustDial(t testing.TB, r *servertest.Server, path string, header http.Header) *tunnel {
	t.Helper()
	tu, status := dial(t, r, path, header)
	if tu == nil {
		t.Fatalf("dial %s: status %d, want 101", path, status)
	}
	return tu
}

// echo checks the tunnel carries a message both ways.
func (tu *tunnel) echo(t testing.TB) {
	t.Helper()
	_ = tu.SetDeadline(time.Now().Add(10 * time.Second))
	defer tu.SetDeadline(time.Time{})
	if err := wsutil.WriteClientText(tu, []byte("ping")); err != nil {
		t.Fatal(err)
	}
	msg, _, err := wsutil.ReadServerData(struct {
		io.Reader
		io.Writer
	}{tu.rd, tu.Conn})
	if err != nil || string(msg) != "ping" {
		t.Fatalf("echo = %q, %v", msg, err)
	}
}

// closeWithin reads until the proxy's Close frame, within d, and returns
// its code and reason (0 and "" when none came in time).
func (tu *tunnel) closeWithin(d time.Duration) (ws.StatusCode, string) {
	_ = tu.SetReadDeadline(time.Now().Add(d))
	for {
		h, err := ws.ReadHeader(tu.rd)
		if err != nil {
			return 0, ""
		}
		p := make([]byte, h.Length)
		if _, err := io.ReadFull(tu.rd, p); err != nil {
			return 0, ""
		}
		if h.OpCode == ws.OpClose {
			code, reason := ws.ParseCloseFrameData(p)
			return code, reason
		}
	}
}

// openFor reports whether no Close arrives within d.
func (tu *tunnel) openFor(d time.Duration) bool {
	code, _ := tu.closeWithin(d)
	_ = tu.SetReadDeadline(time.Time{})
	return code == 0
}

// adminDo sends an admin request with the token given ("" for none).
func adminDo(t testing.TB, r *servertest.Server, method, path, token string, body any) (int, map[string]any) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, r.APIURL()+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(res.Body).Decode(&out)
	return res.StatusCode, out
}

func tokenHeader(tok string) http.Header { return http.Header{"X-Session-Token": {tok}} }

func cookieHeader(id kratostest.Identity) http.Header {
	return http.Header{"Cookie": {id.CookieHeader()}}
}
