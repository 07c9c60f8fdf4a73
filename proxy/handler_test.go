package proxy_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-proxy/portcullis/proxy"
	"github.com/portcullis-proxy/portcullis/testsupport/faultinject"
	"github.com/portcullis-proxy/portcullis/testsupport/handlertest"
)

// proxyFor starts portcullis's proxy handler on loopback with the rules
// document, where UPSTREAM stands for the echo upstream's URL.
func proxyFor(t *testing.T, doc string) (front *httptest.Server, upstream *httptest.Server) {
	t.Helper()
	upstream = echoUpstream(t)
	return serveProxy(t, ruleSet(t, withUpstream(doc, upstream.URL))), upstream
}

// proxyRules are publicRule, adminRule and a rule for each other answer of
// the proxy.
var proxyRules = publicRule + adminRule + handlertest.Rules(
	handlertest.Rule{ID: "stripped", URL: "http://<[^/]+>/api/<.*>", Authenticators: []string{"anonymous: {subject: guest}"},
		Mutators: []string{`header: {headers: {X-User: "{{ print .Subject }}", X-Item: "{{ printIndex .MatchContext.RegexpCaptureGroups 1 }}"}}`},
		More:     []string{"upstream: {url: \"UPSTREAM/base\", strip_path: /api, preserve_host: true}"}},
	handlertest.Rule{ID: "closed", URL: "http://<[^/]+>/closed", Authenticators: []string{"unauthorized"}, Upstream: "UPSTREAM"},
	handlertest.Rule{ID: "dead", URL: "http://<[^/]+>/dead", Authenticators: []string{"noop"}, Upstream: "http://127.0.0.1:1"},
)

func TestProxyForwardsAllowedRequests(t *testing.T) {
	front, upstream := proxyFor(t, proxyRules)

	req, _ := http.NewRequest("POST", front.URL+"/public/a/b?x=1&y=2", strings.NewReader("hello"))
	req.Header.Set("X-User", "admin") // a client trying to spoof the identity header
	req.Header.Set("X-Forwarded-For", "203.0.113.9")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	s := decodeSeen(t, res)
	upHost := strings.TrimPrefix(upstream.URL, "http://")
	checks := []struct{ what, got, want string }{
		{"method", s.Method, "POST"},
		{"path", s.Path, "/public/a/b"},
		{"query", s.Query, "x=1&y=2"},
		{"body", s.Body, "hello"},
		{"X-User", strings.Join(s.Header.Values("X-User"), ","), "anonymous"},
		{"Host (preserve_host off)", s.Host, upHost},
		{"X-Forwarded-Host", s.Header.Get("X-Forwarded-Host"), strings.TrimPrefix(front.URL, "http://")},
		{"X-Forwarded-Proto", s.Header.Get("X-Forwarded-Proto"), "http"},
		// Forwarding headers are not trusted by default (Oathkeeper's
		// trust_forwarded_headers): the client's X-Forwarded-For is
		// replaced by the peer's address.
		{"X-Forwarded-For", s.Header.Get("X-Forwarded-For"), "127.0.0.1"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("upstream saw %s = %q, want %q", c.what, c.got, c.want)
		}
	}
}

func TestProxyStripPathPreserveHostAndCaptureGroups(t *testing.T) {
	front, _ := proxyFor(t, proxyRules)
	req, _ := http.NewRequest("GET", front.URL+"/api/items/42", nil)
	req.Host = "app.example"
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	s := decodeSeen(t, res)
	if s.Path != "/base/items/42" {
		t.Errorf("path = %q, want /base/items/42 (strip_path /api, upstream path /base)", s.Path)
	}
	if s.Host != "app.example" {
		t.Errorf("Host = %q, want the client's (preserve_host)", s.Host)
	}
	if got := s.Header.Get("X-Item"); got != "items/42" {
		t.Errorf("X-Item = %q, want the second capture group items/42", got)
	}
	if got := s.Header.Get("X-User"); got != "guest" {
		t.Errorf("X-User = %q, want guest (rule config over global)", got)
	}
}

func TestProxyDeniesWithJSONErrors(t *testing.T) {
	front, _ := proxyFor(t, proxyRules)
	cases := []struct {
		path   string
		status int
		msg    string
	}{
		{"/nowhere", 404, "Requested url does not match any rules"},
		{"/admin/users", 403, "Access is forbidden"},
		{"/closed", 401, "Access credentials are invalid"},
		{"/dead", 502, "upstream unreachable"},
		// Dot segments are resolved before matching: no bypass by spelling.
		{"/public/../admin", 403, "Access is forbidden"},
		{"/public/%2e%2e/admin", 403, "Access is forbidden"},
	}
	for _, tc := range cases {
		res, err := http.Get(front.URL + tc.path)
		if err != nil {
			t.Fatal(err)
		}
		if res.StatusCode != tc.status {
			t.Errorf("GET %s = %d, want %d", tc.path, res.StatusCode, tc.status)
		}
		if b := decodeError(t, res); b.Error.Message != tc.msg && !(tc.status == 404 && strings.HasPrefix(b.Error.Message, tc.msg+": GET http://")) {
			t.Errorf("GET %s message = %q, want %q", tc.path, b.Error.Message, tc.msg)
		}
	}
	// anonymous is not responsible when credentials are present, and no
	// other authenticator is: 401, as Oathkeeper.
	req, _ := http.NewRequest("GET", front.URL+"/public/x", nil)
	req.Header.Set("Authorization", "Bearer something")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != 401 {
		t.Errorf("anonymous with Authorization = %d, want 401", res.StatusCode)
	}
	res.Body.Close()
}

func TestProxyHopByHopCannotRemoveIdentityHeaders(t *testing.T) {
	front, _ := proxyFor(t, proxyRules)
	req, _ := http.NewRequest("GET", front.URL+"/public/x", nil)
	req.Header.Set("Connection", "X-User, Keep-Alive")
	req.Header.Set("X-User", "admin")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	s := decodeSeen(t, res)
	if got := s.Header.Values("X-User"); len(got) != 1 || got[0] != "anonymous" {
		t.Errorf("X-User = %q, want exactly the mutator's value", got)
	}
	if s.Header.Get("Connection") != "" && strings.Contains(s.Header.Get("Connection"), "X-User") {
		t.Errorf("Connection header forwarded: %q", s.Header.Get("Connection"))
	}
}

func TestProxyUpstreamTimeoutIs504(t *testing.T) {
	set := ruleSet(t, handlertest.Rule{ID: "slow", URL: "http://<[^/]+>/slow", Authenticators: []string{"noop"}, Upstream: faultinject.HangingURL(t)}.YAML())
	tr := proxy.NewTransport()
	tr.ResponseHeaderTimeout = 200 * time.Millisecond
	front := serve(t, proxy.NewHandler(proxy.HandlerOptions{DecisionOptions: over(set), Transport: tr}))
	res, err := http.Get(front.URL + "/slow")
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusGatewayTimeout {
		t.Errorf("slow upstream = %d, want 504", res.StatusCode)
	}
	decodeError(t, res)
}

func TestProxyWithoutRulesIs503(t *testing.T) {
	front := serveProxy(t, nil)
	res, err := http.Get(front.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != 503 {
		t.Errorf("no rules loaded = %d, want 503", res.StatusCode)
	}
	decodeError(t, res)
}

func TestStripPathAtSegmentBoundary(t *testing.T) {
	front, _ := proxyFor(t, handlertest.Rule{ID: "api", URL: "http://<[^/]+>/<.*>", Authenticators: []string{"noop"},
		More: []string{`upstream: {url: "UPSTREAM", strip_path: /api}`}}.YAML())
	for in, want := range map[string]string{"/api/x": "/x", "/api": "/", "/api/": "/", "/apiary": "/apiary", "/other/api/x": "/other/api/x"} {
		res, err := http.Get(front.URL + in)
		if err != nil {
			t.Fatal(err)
		}
		if s := decodeSeen(t, res); s.Path != want {
			t.Errorf("strip_path /api: %s went upstream as %q, want %q", in, s.Path, want)
		}
	}
}

func TestAmbiguousPathsAreRefused(t *testing.T) {
	front, _ := proxyFor(t, proxyRules)
	for _, p := range []string{"/public/..;/admin", "/public/.;/x", "/public/a%5c..%5cadmin", "/public/x%00"} {
		res, err := http.Get(front.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		if res.StatusCode != http.StatusBadRequest {
			t.Errorf("GET %s = %d, want 400", p, res.StatusCode)
		}
		decodeError(t, res)
	}
	// A semicolon elsewhere is an ordinary character.
	res, err := http.Get(front.URL + "/public/a;b=1")
	if err != nil {
		t.Fatal(err)
	}
	if s := decodeSeen(t, res); s.Path != "/public/a;b=1" {
		t.Errorf("path with ;: %q", s.Path)
	}
}
