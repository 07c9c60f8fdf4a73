package proxy_test

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/portcullis-proxy/portcullis/proxy"
	"github.com/portcullis-proxy/portcullis/testsupport/handlertest"
)

// forwardedRules: one rule per scheme on the front's host, a /public/ rule
// on the literal host 127.0.0.1 (the review's attack pasted "/public" into
// X-Forwarded-Host to reach it) and a redirecting rule.
var forwardedRules = handlertest.Rules(
	namedRule("plain", "http://<[^/]+>/page", "UPSTREAM"),
	namedRule("tls", "https://<[^/]+>/page", "UPSTREAM"),
	namedRule("public", "http://FRONTHOST/public/<.*>", "UPSTREAM"),
	handlertest.Rule{ID: "login", URL: "<https?>://<[^/]+>/account", Authenticators: []string{"unauthorized"}, Upstream: "UPSTREAM",
		More: []string{`errors: [{handler: redirect, config: {to: "http://login.test/", return_to_query_param: return_to}}]`}},
)

// forwardedProxy is a real proxy on loopback with the given trust over
// forwardedRules, in front of the echo upstream.
func forwardedProxy(t *testing.T, trust, matchHost bool) string {
	t.Helper()
	up := echoUpstream(t)
	front := httptest.NewUnstartedServer(nil)
	host := front.Listener.Addr().String()
	doc := strings.ReplaceAll(withUpstream(forwardedRules, up.URL), "FRONTHOST", host)
	front.Config.Handler = proxy.NewHandler(proxy.HandlerOptions{DecisionOptions: over(ruleSet(t, doc)), TrustForwardedHeaders: trust, MatchForwardedHost: matchHost})
	front.Start()
	t.Cleanup(front.Close)
	return front.URL
}

// TestProxyUntrustedForwardedHeaders: by default (Oathkeeper's
// trust_forwarded_headers: false) the client's X-Forwarded-* reach neither
// the upstream nor a redirect's return_to, and X-Forwarded-Host chooses no
// rule. X-Forwarded-Proto selects a rule's https:// form, as Oathkeeper's
// own forwarded-header e2e expects, and must then be one valid value.
func TestProxyUntrustedForwardedHeaders(t *testing.T) {
	front := forwardedProxy(t, false, false)
	fh := strings.TrimPrefix(front, "http://")
	spoof := http.Header{
		"X-Forwarded-Host":  {"evil.example"},
		"X-Forwarded-Proto": {"https"},
		"X-Forwarded-For":   {"203.0.113.9"},
	}
	res := send(t, "GET", front+"/page", spoof)
	s := decodeSeen(t, res)
	for k, want := range map[string]string{"X-Rule": "tls", "X-Forwarded-Host": fh, "X-Forwarded-Proto": "http", "X-Forwarded-For": "127.0.0.1"} {
		if got := strings.Join(s.Header.Values(k), ","); got != want {
			t.Errorf("upstream saw %s = %q, want %q", k, got, want)
		}
	}
	res = send(t, "GET", front+"/account?x=1", spoof)
	res.Body.Close()
	want := "http://login.test/?return_to=" + url.QueryEscape(front+"/account?x=1")
	if res.StatusCode != http.StatusFound || res.Header.Get("Location") != want {
		t.Errorf("redirect = %d %q, want 302 %q", res.StatusCode, res.Header.Get("Location"), want)
	}
	// Oathkeeper's forwarded-header e2e: the proto picks the rule's form.
	for proto, want := range map[string]string{"": "plain", "http": "plain", "HTTPS": "tls"} {
		h := http.Header{}
		if proto != "" {
			h["X-Forwarded-Proto"] = []string{proto}
		}
		if s := decodeSeen(t, send(t, "GET", front+"/page", h)); s.Header.Get("X-Rule") != want {
			t.Errorf("X-Forwarded-Proto %q: rule %q, want %q", proto, s.Header.Get("X-Rule"), want)
		}
	}
	// An untrusted X-Forwarded-Host is not looked at at all; an
	// X-Forwarded-Proto, which chooses the rule's form, must be valid.
	res = send(t, "GET", front+"/page", http.Header{"X-Forwarded-Host": {"a/b, c"}})
	if s := decodeSeen(t, res); s.Header.Get("X-Forwarded-Host") != fh {
		t.Errorf("upstream saw X-Forwarded-Host %q, want %q", s.Header.Get("X-Forwarded-Host"), fh)
	}
	for _, p := range [][]string{{"ftp"}, {"https, http"}, {"http", "https"}} {
		wantBadRequest(t, front+"/page", http.Header{"X-Forwarded-Proto": p})
	}
}

// wantBadRequest GETs u with header h and fails t unless the answer is a
// 400 with the JSON error body.
func wantBadRequest(t *testing.T, u string, h http.Header) {
	t.Helper()
	res := send(t, "GET", u, h)
	if res.StatusCode != http.StatusBadRequest {
		t.Errorf("GET %s with %v = %d, want 400", u, h, res.StatusCode)
	}
	decodeError(t, res)
}

// TestProxyTrustedForwardedHeaders: trusted, X-Forwarded-Proto decides the
// scheme rules match (as in Oathkeeper) and the load balancer's values go
// upstream; each must be exactly one valid value. X-Forwarded-Host decides
// the matched host only with match_forwarded_host.
func TestProxyTrustedForwardedHeaders(t *testing.T) {
	front := forwardedProxy(t, true, false)
	fh := strings.TrimPrefix(front, "http://")
	res := send(t, "GET", front+"/page", http.Header{
		"X-Forwarded-Host":  {"app.example"},
		"X-Forwarded-Proto": {"https"},
		"X-Forwarded-For":   {"203.0.113.9"},
	})
	s := decodeSeen(t, res)
	for k, want := range map[string]string{"X-Rule": "tls", "X-Forwarded-Host": "app.example", "X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.9, 127.0.0.1"} {
		if got := strings.Join(s.Header.Values(k), ","); got != want {
			t.Errorf("upstream saw %s = %q, want %q", k, got, want)
		}
	}
	// X-Forwarded-Host does not choose the rule without match_forwarded_host.
	res = send(t, "GET", front+"/public/x", http.Header{"X-Forwarded-Host": {"other.example"}})
	if s := decodeSeen(t, res); s.Header.Get("X-Rule") != "public" {
		t.Errorf("rule = %q, want public (matched on Host %s)", s.Header.Get("X-Rule"), fh)
	}
	for _, h := range []http.Header{
		{"X-Forwarded-Host": {fh + "/public"}},
		{"X-Forwarded-Host": {"a.example, b.example"}},
		{"X-Forwarded-Host": {"a.example", "b.example"}},
		{"X-Forwarded-Host": {"user@a.example"}},
		{"X-Forwarded-Proto": {"https, http"}},
		{"X-Forwarded-Proto": {"javascript"}},
		{"X-Forwarded-Proto": {"http", "https"}},
	} {
		wantBadRequest(t, front+"/page", h)
	}
}

// TestProxyMatchForwardedHost: with match_forwarded_host the trusted
// X-Forwarded-Host decides the host rules match, and the review's attack
// (a host carrying "/public", the path /secret) is a 400, not the /public/
// rule.
func TestProxyMatchForwardedHost(t *testing.T) {
	front := forwardedProxy(t, true, true)
	fh := strings.TrimPrefix(front, "http://")
	wantBadRequest(t, front+"/secret", http.Header{"X-Forwarded-Host": {fh + "/public"}})
	res := send(t, "GET", "http://"+fh+"/public/x", http.Header{"X-Forwarded-Host": {"other.example"}})
	res.Body.Close()
	if res.StatusCode != http.StatusNotFound {
		t.Errorf("X-Forwarded-Host other.example + /public/x = %d, want 404 (the /public/ rule is for %s)", res.StatusCode, fh)
	}
}
