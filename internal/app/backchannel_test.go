package app_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/portcullis-proxy/portcullis/internal/revocation"
	"github.com/portcullis-proxy/portcullis/testsupport/handlertest"
	"github.com/portcullis-proxy/portcullis/testsupport/servertest"
	"github.com/portcullis-proxy/portcullis/testsupport/testkeys"
	"github.com/portcullis-proxy/portcullis/testsupport/wsecho"
)

// TestBackchannelLogout: an OpenID Connect Back-Channel Logout token,
// signed by the OP's key, closes the jwt-authenticated tunnel of the
// session it names (sid) with 1008 and refuses the session's next upgrade;
// forged, replayed, expired, wrong-audience, nonce-carrying, event-less and
// sid/sub-less tokens are refused with 400 and the spec's error body, and
// close nothing.
func TestBackchannelLogout(t *testing.T) {
	op := testkeys.RSA(t, "op-1")
	other := testkeys.RSA(t, "op-1") // same kid, another key: a forgery
	dir := t.TempDir()
	jwksFile := filepath.Join(dir, "jwks.json")
	if err := os.WriteFile(jwksFile, testkeys.PublicSet(t, op), 0o600); err != nil {
		t.Fatal(err)
	}
	const iss, aud = "https://op.example", "portcullis-client"
	up := wsecho.Start(t, wsecho.Options{})
	s := startServer(t, `
authenticators:
  jwt: {enabled: true, config: {jwks_urls: ["file://`+jwksFile+`"], trusted_issuers: ["`+iss+`"]}}
authorizers: {allow: {enabled: true}}
mutators: {noop: {enabled: true}}
revocation:
  backchannel_logout:
    path: /oidc/backchannel-logout
    issuer: `+iss+`
    audience: [`+aud+`]
    jwks_urls: ["file://`+jwksFile+`"]
`, handlertest.Rules(handlertest.Rule{ID: "ws", URL: "<https?>://<[^/]+>/ws", Authenticators: []string{"jwt"}, Upstream: up.URL}))

	now := time.Now()
	idToken := testkeys.Sign(t, op, map[string]any{
		"iss": iss, "aud": aud, "sub": "user-1", "sid": "op-session-1", "iat": now.Unix(), "exp": now.Add(time.Hour).Unix(),
	}, false)
	dialWS := func() (*servertest.Tunnel, int) {
		return s.DialTunnel(t, ws.Dialer{Header: ws.HandshakeHeaderHTTP(http.Header{"Authorization": {"Bearer " + idToken}})}, "/ws")
	}
	tunnel, status := dialWS()
	if tunnel == nil {
		t.Fatalf("jwt upgrade: %d", status)
	}

	logoutClaims := func(edit func(c map[string]any)) map[string]any {
		c := map[string]any{
			"iss": iss, "aud": aud, "sub": "user-1", "sid": "op-session-1",
			"iat": time.Now().Unix(), "exp": time.Now().Add(2 * time.Minute).Unix(),
			"jti":    "jti-" + time.Now().Format("150405.000000000"),
			"events": map[string]any{revocation.BackchannelEvent: map[string]any{}},
		}
		if edit != nil {
			edit(c)
		}
		return c
	}
	post := func(token string) (int, map[string]string) {
		res, err := http.PostForm(s.APIURL()+"/oidc/backchannel-logout", url.Values{"logout_token": {token}})
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var body map[string]string
		_ = json.NewDecoder(res.Body).Decode(&body)
		if res.Header.Get("Cache-Control") != "no-store" {
			t.Errorf("answer without Cache-Control: no-store")
		}
		return res.StatusCode, body
	}

	refused := []struct {
		name  string
		token string
	}{
		{"forged (another key under the OP's kid)", testkeys.Sign(t, other, logoutClaims(nil), false)},
		{"wrong audience", testkeys.Sign(t, op, logoutClaims(func(c map[string]any) { c["aud"] = "someone-else" }), false)},
		{"wrong issuer", testkeys.Sign(t, op, logoutClaims(func(c map[string]any) { c["iss"] = "https://evil.example" }), false)},
		{"expired", testkeys.Sign(t, op, logoutClaims(func(c map[string]any) {
			c["iat"], c["exp"] = time.Now().Add(-time.Hour).Unix(), time.Now().Add(-50*time.Minute).Unix()
		}), false)},
		{"issued too long ago", testkeys.Sign(t, op, logoutClaims(func(c map[string]any) { c["iat"] = time.Now().Add(-10 * time.Minute).Unix() }), false)},
		{"with a nonce (an ID token)", testkeys.Sign(t, op, logoutClaims(func(c map[string]any) { c["nonce"] = "n-0S6_WzA2Mj" }), false)},
		{"without the events member", testkeys.Sign(t, op, logoutClaims(func(c map[string]any) { c["events"] = map[string]any{"other": map[string]any{}} }), false)},
		{"without sid and sub", testkeys.Sign(t, op, logoutClaims(func(c map[string]any) { delete(c, "sid"); delete(c, "sub") }), false)},
		{"without jti", testkeys.Sign(t, op, logoutClaims(func(c map[string]any) { delete(c, "jti") }), false)},
		{"the ID token itself", idToken},
		{"not a JWT", "not-a-token"},
	}
	for _, tc := range refused {
		st, body := post(tc.token)
		if st != http.StatusBadRequest || body["error"] != "invalid_request" || body["error_description"] == "" {
			t.Errorf("%s: %d %v, want 400 invalid_request with a description", tc.name, st, body)
		}
	}
	tunnel.Echo(t, "hi")

	valid := testkeys.Sign(t, op, logoutClaims(nil), false)
	if st, body := post(valid); st != http.StatusOK {
		t.Fatalf("valid logout token: %d %v", st, body)
	}
	if code, reason := tunnel.CloseWithin(10 * time.Second); code != ws.StatusPolicyViolation || reason != "session revoked" {
		t.Errorf("tunnel got Close %d %q, want 1008 \"session revoked\"", code, reason)
	}
	if st, body := post(valid); st != http.StatusBadRequest || !strings.Contains(body["error_description"], "jti") {
		t.Errorf("replayed token: %d %v, want 400 naming jti", st, body)
	}
	// The ID token is still valid until its exp; the session is not.
	if c, st := dialWS(); c != nil || st != http.StatusUnauthorized {
		t.Errorf("upgrade with the logged-out session: %d, want 401", st)
	}
	// Only POSTed forms.
	if st := statusOf(t, s.APIURL()+"/oidc/backchannel-logout"); st != http.StatusMethodNotAllowed {
		t.Errorf("GET: %d, want 405", st)
	}
	if strings.Contains(s.Logs(), valid) || strings.Contains(s.Logs(), idToken) {
		t.Error("a token was logged")
	}
}
