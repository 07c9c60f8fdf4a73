package replicas

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"testing"

	"github.com/gobwas/ws"

	"github.com/portcullis-proxy/portcullis/testsupport/handlertest"
	"github.com/portcullis-proxy/portcullis/testsupport/kratostest"
	"github.com/portcullis-proxy/portcullis/testsupport/servertest"
)

var kratosShared = &kratostest.Shared{}

func TestMain(m *testing.M) { kratostest.RunMain(m, kratosShared) }

// adminToken is the admin API token of every replica in these tests.
const adminToken = "test-admin-token-0123456789"

// replicaRules are the access rules of every replica: the tunnels at
// /chat/ and /feed/ for a Kratos session, re-checked every
// revalidateEvery, and Kratos's public API at kratosPublic.
func replicaRules(upstream, kratosPublic, revalidateEvery string) string {
	var tunnels []handlertest.Rule
	for _, id := range []string{"chat", "feed"} {
		tunnels = append(tunnels, handlertest.Rule{ID: id, URL: "http://<[^/]+>/" + id + "/<.*>",
			Authenticators: []string{"cookie_session", "bearer_token"}, Upstream: upstream,
			More: []string{"websocket: {revalidate_every: " + revalidateEvery + ", close_grace: 1s}"}})
	}
	return handlertest.Rules(tunnels...) + fmt.Sprintf(kratosRules, kratosPublic)
}

const kratosRules = `
# Kratos's logout endpoints: the session the authenticator finds is
# revoked once Kratos answers with success.
- id: kratos-logout
  match: {url: "http://<[^/]+>/.ory/kratos/public/self-service/logout<(/api)?>", methods: [GET, DELETE]}
  authenticators: [{handler: cookie_session}, {handler: bearer_token}]
  authorizer: {handler: allow}
  mutators: [{handler: noop}]
  upstream: {url: %[1]q, strip_path: /.ory/kratos/public}
  revoke_session_on_success: true
- id: kratos-public
  match: {url: "http://<[^/]+>/.ory/kratos/public/<(self-service/(login|registration|logout/browser)(/.*)?|sessions/whoami)>", methods: [GET, POST]}
  authenticators: [{handler: noop}]
  authorizer: {handler: allow}
  mutators: [{handler: noop}]
  upstream: {url: %[1]q, strip_path: /.ory/kratos/public}
`

// configTemplate is laid over both Kratos session authenticators
// ([servertest.KratosSessions]); %[1]q is the revocation store's Redis,
// %[2]q the admin API's token.
const configTemplate = `
serve:
  proxy: {host: 127.0.0.1, port: 0}
  api: {host: 127.0.0.1, port: 0, admin: {token: %[2]q}}
  prometheus: {host: 127.0.0.1, port: 0}
revocation:
  redis: {url: %[1]q}
log: {level: info}
authenticators:
  noop: {enabled: true}
  cookie_session: {config: {cache: {ttl: 30s}}}
  bearer_token: {config: {token_from: {header: X-Session-Token}, cache: {ttl: 30s}}}
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
		YAML:  servertest.Merge(t, servertest.KratosSessions(o.whoamiURL, "cookie_session", "bearer_token"), fmt.Sprintf(configTemplate, o.redisURL, adminToken)),
		Rules: replicaRules(o.upstream, o.kratosPublic, o.revalidateEvery),
	})
}

// dial opens a WebSocket through the replica's proxy with header; an
// upgrade refused returns nil and the status.
func dial(t testing.TB, r *servertest.Server, path string, header http.Header) (*servertest.Tunnel, int) {
	t.Helper()
	return r.DialTunnel(t, ws.Dialer{Header: ws.HandshakeHeaderHTTP(header)}, path)
}

func mustDial(t testing.TB, r *servertest.Server, path string, header http.Header) *servertest.Tunnel {
	t.Helper()
	tu, status := dial(t, r, path, header)
	if tu == nil {
		t.Fatalf("dial %s: status %d, want 101", path, status)
	}
	return tu
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
