package proxy_test

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/portcullis-proxy/portcullis/proxy"
	"github.com/portcullis-proxy/portcullis/testsupport/handlertest"
)

var patternRule = handlertest.Rule{ID: "api", URL: "http://x/api/<.*>", Authenticators: []string{"noop"}, Upstream: "http://up"}.YAML()

// JSON answers keep < > literal, indent on ?pretty, and the mux's own
// answers (unknown path, wrong method) are JSON too.
func TestAPIAnswersJSON(t *testing.T) {
	srv := serve(t, proxy.NewAPI(proxy.APIOptions{DecisionOptions: over(ruleSet(t, patternRule)), Version: proxy.Version{Version: "1.2.3"}}))

	_, body := get(t, "GET", srv.URL+"/rules/api", nil)
	if !strings.Contains(body, `"url":"http://x/api/<.*>"`) || strings.Contains(body, `\u003c`) {
		t.Errorf("GET /rules/api = %s, want < > literal", body)
	}
	_, body = get(t, "GET", srv.URL+"/rules?pretty", nil)
	if !strings.Contains(body, "[\n  {\n    \"id\": \"api\",") || !strings.Contains(body, `"url": "http://x/api/<.*>"`) {
		t.Errorf("GET /rules?pretty = %s, want indented JSON", body)
	}
	_, body = get(t, "GET", srv.URL+"/version?pretty=false", nil)
	if body != "{\"version\":\"1.2.3\"}\n" {
		t.Errorf("?pretty=false = %q", body)
	}
	_, body = get(t, "GET", srv.URL+"/rules/nope?pretty", nil)
	if !strings.Contains(body, "{\n  \"error\": {\n    \"code\": 404,") {
		t.Errorf("error with ?pretty = %s", body)
	}
	for _, tc := range []struct {
		method, path string
		status       int
		message      string
	}{
		{"GET", "/nothing/here", 404, `no API endpoint \"/nothing/here\"`},
		{"POST", "/rules", 405, "method POST is not allowed here"},
		{"DELETE", "/health/alive", 405, "method DELETE is not allowed here"},
	} {
		res, body := get(t, tc.method, srv.URL+tc.path, nil)
		if res.StatusCode != tc.status || !strings.HasPrefix(res.Header.Get("Content-Type"), "application/json") || !strings.Contains(body, tc.message) {
			t.Errorf("%s %s = %d %q %s", tc.method, tc.path, res.StatusCode, res.Header.Get("Content-Type"), body)
		}
		if tc.status == 405 && res.Header.Get("Allow") != "GET, HEAD" {
			t.Errorf("%s %s: Allow = %q", tc.method, tc.path, res.Header.Get("Allow"))
		}
	}
}

// Without an id_token mutator the key set is empty, as JSON.
func TestAPIJWKSWithoutIDTokenIsAnEmptySet(t *testing.T) {
	srv := serveAPI(t, ruleSet(t, patternRule))
	res, body := get(t, "GET", srv.URL+"/.well-known/jwks.json", nil)
	if res.StatusCode != 200 || body != "{\"keys\":[]}\n" || !strings.HasPrefix(res.Header.Get("Content-Type"), "application/json") {
		t.Errorf("jwks = %d %q %s", res.StatusCode, res.Header.Get("Content-Type"), body)
	}
	// A contributed route replaces it.
	srv2 := serve(t, proxy.NewAPI(proxy.APIOptions{DecisionOptions: over(ruleSet(t, patternRule)), Routes: map[string]http.Handler{
		proxy.JWKSPath: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, `{"keys":[{"kid":"k"}]}`) }),
	}}))
	if _, body := get(t, "GET", srv2.URL+"/.well-known/jwks.json", nil); !strings.Contains(body, `"kid":"k"`) {
		t.Errorf("contributed jwks = %s", body)
	}
}

// A request no rule matches is told the method and URL that were tried,
// without the query, by the decision API and the proxy, in the body and in
// the request log.
func TestNoMatchNamesMethodAndURL(t *testing.T) {
	var out lockedBuffer
	opts := logged(ruleSet(t, patternRule), logTo(&out))
	api := serve(t, proxy.NewAPI(proxy.APIOptions{DecisionOptions: opts}))
	front := serve(t, proxy.NewHandler(proxy.HandlerOptions{DecisionOptions: opts}))

	res, body := get(t, "POST", api.URL+"/decisions/api/x?token=secret", http.Header{"X-Forwarded-Host": {"wrong.example"}})
	want := `Requested url does not match any rules: POST http://wrong.example/api/x"`
	if res.StatusCode != 404 || !strings.Contains(body, want) || strings.Contains(body, "secret") {
		t.Errorf("decision = %d %s, want %s", res.StatusCode, body, want)
	}
	res, body = get(t, "GET", front.URL+"/other?token=secret", nil)
	host := strings.TrimPrefix(front.URL, "http://")
	if want := `Requested url does not match any rules: GET http://` + host + `/other"`; res.StatusCode != 404 || !strings.Contains(body, want) || strings.Contains(body, "secret") {
		t.Errorf("proxy = %d %s, want %s", res.StatusCode, body, want)
	}
	log := out.String()
	for _, want := range []string{
		`reason="Requested url does not match any rules: POST http://wrong.example/api/x"`,
		`reason="Requested url does not match any rules: GET http://` + host + `/other"`,
	} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %s:\n%s", want, log)
		}
	}
	if strings.Contains(log, "secret") {
		t.Errorf("log carries the query:\n%s", log)
	}
}
