package proxy_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/portcullis-proxy/portcullis/testsupport/handlertest"
)

var decisionRules = handlertest.Rules(
	handlertest.Rule{ID: "api", URL: "https://app.example/api/<.*>", Methods: []string{"GET", "DELETE"},
		Mutators: []string{`header: {headers: {X-User: "{{ print .Subject }}", X-Path: "{{ .MatchContext.URL.Path }}", X-Method: "{{ .MatchContext.Method }}"}}`}},
	handlertest.Rule{ID: "deny", URL: "<https?>://app.example/admin", Authorizer: "deny"},
	handlertest.Rule{ID: "local", URL: "http://<[^/]+>/local/<.*>", Authenticators: []string{"noop"}},
)

func decisionsAPI(t *testing.T) *httptest.Server {
	return serveAPI(t, ruleSet(t, decisionRules))
}

func TestDecisionsFromForwardedHeaders(t *testing.T) {
	srv := decisionsAPI(t)
	req, _ := http.NewRequest("GET", srv.URL+"/decisions", nil)
	req.Header.Set("X-Forwarded-Method", "DELETE")
	req.Header.Set("X-Forwarded-Proto", "https")
	req.Header.Set("X-Forwarded-Host", "app.example")
	req.Header.Set("X-Forwarded-Uri", "/api/items/7?token=secret")
	req.Header.Set("X-User", "spoofed")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("status = %d, want 200", res.StatusCode)
	}
	for k, want := range map[string]string{"X-User": "anonymous", "X-Path": "/api/items/7", "X-Method": "DELETE"} {
		if got := res.Header.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
}

func TestDecisionsFromThePath(t *testing.T) {
	srv := decisionsAPI(t)
	// Without forwarded headers the call's own method, host and path
	// (minus /decisions) describe the request.
	res, err := http.Get(srv.URL + "/decisions/local/thing")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Errorf("status = %d, want 200", res.StatusCode)
	}
	// noop forwards the request's headers, as Oathkeeper's decisions do.
	req, _ := http.NewRequest("GET", srv.URL+"/decisions/local/thing", nil)
	req.Header.Set("X-Trace", "abc")
	res, _ = http.DefaultClient.Do(req)
	res.Body.Close()
	if res.Header.Get("X-Trace") != "abc" {
		t.Errorf("noop mutator: X-Trace = %q, want the request's", res.Header.Get("X-Trace"))
	}
}

func TestDecisionsDenials(t *testing.T) {
	srv := decisionsAPI(t)
	cases := []struct {
		host, uri, method string
		status            int
	}{
		{"app.example", "/admin", "GET", 403},
		{"app.example", "/nothing", "GET", 404},
		{"app.example", "/api/x", "POST", 404},
	}
	for _, tc := range cases {
		req, _ := http.NewRequest("GET", srv.URL+"/decisions", nil)
		req.Header.Set("X-Forwarded-Method", tc.method)
		req.Header.Set("X-Forwarded-Proto", "https")
		req.Header.Set("X-Forwarded-Host", tc.host)
		req.Header.Set("X-Forwarded-Uri", tc.uri)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if res.StatusCode != tc.status {
			t.Errorf("%s %s = %d, want %d", tc.method, tc.uri, res.StatusCode, tc.status)
		}
		decodeError(t, res)
	}
}

func TestDecisionsPathCannotBeSpelledAround(t *testing.T) {
	srv := decisionsAPI(t)
	for _, uri := range []string{"/api/../admin", "/api/%2e%2e/admin", "//admin", "/api/./../admin"} {
		req, _ := http.NewRequest("GET", srv.URL+"/decisions", nil)
		req.Header.Set("X-Forwarded-Proto", "https")
		req.Header.Set("X-Forwarded-Host", "app.example")
		req.Header.Set("X-Forwarded-Uri", uri)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		// The application behind the fronting proxy may read these paths
		// otherwise than portcullis would resolve them: refused.
		if res.StatusCode != 400 {
			t.Errorf("%s = %d, want 400", uri, res.StatusCode)
		}
	}
}

func TestDecisionRedirectReturnsToTheDescribedPage(t *testing.T) {
	srv := serveAPI(t, ruleSet(t, handlertest.Rule{ID: "app", URL: "http://app.example/<.*>", Authenticators: []string{"unauthorized"},
		More: []string{`errors: [{handler: redirect, config: {to: "http://app.example/login", return_to_query_param: return_to}}]`}}.YAML()))
	req, _ := http.NewRequest("GET", srv.URL+"/decisions/dashboard?tab=2", nil)
	req.Header.Set("X-Forwarded-Host", "app.example")
	res, err := noFollow.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	want := "http://app.example/login?return_to=http%3A%2F%2Fapp.example%2Fdashboard%3Ftab%3D2"
	if res.StatusCode != http.StatusFound || res.Header.Get("Location") != want {
		t.Errorf("redirect = %d %q, want 302 %q", res.StatusCode, res.Header.Get("Location"), want)
	}
}
