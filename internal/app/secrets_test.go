package app_test

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/portcullis-proxy/portcullis/testsupport/handlertest"
	"github.com/portcullis-proxy/portcullis/testsupport/servertest"
	"github.com/portcullis-proxy/portcullis/testsupport/testkeys"
)

// TestSecretsNeverLoggedAndQueryTokensScrubbed sends valid and invalid
// credentials in every place a token can travel, at the most verbose log
// levels and in both formats, and scans everything logged for them. It also
// checks that a token taken from a query parameter does not reach the
// upstream.
func TestSecretsNeverLoggedAndQueryTokensScrubbed(t *testing.T) {
	key := testkeys.RSA(t, "k1")
	jwks := "inline://" + base64.StdEncoding.EncodeToString(testkeys.PublicSet(t, key))
	good := testkeys.Sign(t, key, map[string]any{"sub": "user-1", "exp": 9999999999}, false)
	bad := "secret-not-a-token-8c1f0e"
	badCookie := "secret-cookie-value-77aa19"

	var upstreamSaw []string
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		upstreamSaw = append(upstreamSaw, r.URL.RawQuery)
		fmt.Fprint(w, r.Header.Get("X-User"))
	}))
	defer up.Close()

	// A rule for each place a token travels: the Authorization header, a
	// query parameter (with and without a redirect to log in), a cookie.
	jwtFrom := func(id, path, authn string, more ...string) handlertest.Rule {
		return handlertest.Rule{ID: id, URL: "http://<[^/]+>/" + path, Authenticators: []string{authn}, Mutators: []string{"header"}, Upstream: up.URL, More: more}
	}
	rules := handlertest.Rules(
		jwtFrom("header", "h", "jwt"),
		jwtFrom("query", "q", "jwt: {token_from: {query_parameter: access_token}}"),
		jwtFrom("query-login", "ql", "jwt: {token_from: {query_parameter: access_token}}",
			`errors: [{handler: redirect, config: {to: "http://login.example/login", return_to_query_param: return_to}}]`),
		jwtFrom("cookie", "c", "jwt: {token_from: {cookie: tok}}"),
	)

	for _, format := range []string{"text", "json"} {
		for _, level := range []string{"debug", "trace"} {
			t.Run(format+"/"+level, func(t *testing.T) {
				upstreamSaw = nil
				cfg := fmt.Sprintf(`
log: {level: %s, format: %s}
authenticators: {jwt: {enabled: true, config: {jwks_urls: [%q]}}}
authorizers: {allow: {enabled: true}}
mutators: {header: {enabled: true, config: {headers: {X-User: "{{ print .Subject }}"}}}}
errors: {handlers: {json: {enabled: true, config: {verbose: true}}, redirect: {enabled: true}}}
`, level, format, jwks)
				s := startServer(t, cfg, rules)
				base := s.URL()
				send := func(path string, set func(*http.Request)) (int, string) {
					req, _ := http.NewRequest("GET", base+path, nil)
					set(req)
					return servertest.Fetch(t, req)
				}
				checks := []struct {
					path   string
					set    func(*http.Request)
					status int
				}{
					{"/h", func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+good) }, 200},
					{"/h", func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+bad) }, 401},
					{"/q?access_token=" + good + "&keep=1", func(*http.Request) {}, 200},
					{"/q?access_token=" + bad, func(*http.Request) {}, 401},
					{"/c", func(r *http.Request) { r.AddCookie(&http.Cookie{Name: "tok", Value: good}) }, 200},
					{"/c", func(r *http.Request) {
						r.AddCookie(&http.Cookie{Name: "tok", Value: bad})
						r.AddCookie(&http.Cookie{Name: "other", Value: badCookie})
					}, 401},
				}
				for _, c := range checks {
					status, body := send(c.path, c.set)
					if status != c.status {
						t.Errorf("GET %s: %d %q, want %d", strings.Split(c.path, "?")[0], status, body, c.status)
					}
					if status == 200 && body != "user-1" {
						t.Errorf("GET %s: upstream saw subject %q", strings.Split(c.path, "?")[0], body)
					}
					if strings.Contains(body, good) || strings.Contains(body, bad) || strings.Contains(body, badCookie) {
						t.Errorf("GET %s: the response echoes a credential", strings.Split(c.path, "?")[0])
					}
				}
				// A rejected query token must not be copied into the
				// login redirect's return_to either.
				noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
				res, err := noFollow.Get(base + "/ql?access_token=" + bad + "&keep=1")
				if err != nil {
					t.Fatal(err)
				}
				res.Body.Close()
				loc := res.Header.Get("Location")
				if res.StatusCode != http.StatusFound || !strings.Contains(loc, "keep%3D1") || strings.Contains(loc, bad) || strings.Contains(loc, "access_token") {
					t.Errorf("redirect for a rejected query token: %d Location %q", res.StatusCode, loc)
				}
				for _, q := range upstreamSaw {
					if strings.Contains(q, "access_token") || strings.Contains(q, good) {
						t.Errorf("the query token reached the upstream: %q", q)
					}
				}
				if len(upstreamSaw) == 0 || !strings.Contains(strings.Join(upstreamSaw, "|"), "keep=1") {
					t.Errorf("other query parameters must survive: %q", upstreamSaw)
				}
				logs := s.Logs()
				if !strings.Contains(logs, "rule") {
					t.Fatalf("nothing was logged: %q", logs)
				}
				for name, secret := range map[string]string{"valid token": good, "invalid token": bad, "cookie": badCookie,
					"token signature": good[strings.LastIndexByte(good, '.')+1:]} {
					if strings.Contains(logs, secret) {
						t.Errorf("the log contains the %s", name)
					}
				}
				if format == "json" {
					for _, line := range strings.Split(strings.TrimSpace(logs), "\n") {
						if !json.Valid([]byte(line)) {
							t.Errorf("log line is not JSON: %q", line)
						}
					}
				}
			})
		}
	}
}
