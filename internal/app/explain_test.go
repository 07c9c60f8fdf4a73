package app_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/portcullis-proxy/portcullis/proxy"
	"github.com/portcullis-proxy/portcullis/testsupport/handlertest"
)

// POST /admin/explain answers, behind the admin token, with the
// explanation of the decision for the request its body describes.
func TestAdminExplain(t *testing.T) {
	s := startServer(t, `
authenticators: {anonymous: {enabled: true}}
authorizers: {allow: {enabled: true}, deny: {enabled: true}}
mutators: {header: {enabled: true, config: {headers: {X-User: "{{ print .Subject }}"}}}}
serve:
  proxy: {host: 127.0.0.1, port: 0}
  api: {host: 127.0.0.1, port: 0, admin: {token: s3cr3t-admin-token}}
  prometheus: {port: -1}
`, handlertest.Rules(handlertest.Rule{ID: "closed", URL: "<https?>://<[^/]+>/closed/<.*>", Authorizer: "deny", Mutators: []string{"header"}}))
	post := func(auth, body string) (*http.Response, proxy.Explanation) {
		t.Helper()
		var h http.Header
		if auth != "" {
			h = http.Header{"Authorization": {auth}}
		}
		var ex proxy.Explanation
		return handlertest.PostJSON(t, s.APIURL()+"/admin/explain", h, body, &ex), ex
	}
	body := `{"method":"GET","url":"https://app.example/closed/x","headers":{"Authorization":"Bearer other"}}`
	for _, auth := range []string{"", "Bearer wrong"} {
		if res, _ := post(auth, body); res.StatusCode != http.StatusUnauthorized {
			t.Errorf("admin token %q: status %d, want 401", auth, res.StatusCode)
		}
	}
	res, ex := post("Bearer s3cr3t-admin-token", `{"method":"GET","url":"https://app.example/closed/x"}`)
	if res.StatusCode != http.StatusOK || ex.Rule != "closed" || ex.Decision != "denied" || ex.Status != http.StatusForbidden ||
		len(ex.Stages) != 2 || ex.Stages[1].Outcome != "denied" {
		t.Errorf("status %d, explanation %+v; want the closed rule denied by its authorizer", res.StatusCode, ex)
	}
	if res, ex := post("Bearer s3cr3t-admin-token", `{"url":"https://app.example/closed/..%2fx"}`); res.StatusCode != http.StatusOK || ex.Status != http.StatusBadRequest {
		t.Errorf("ambiguous path: status %d, explanation %+v; want a 400 explained", res.StatusCode, ex)
	}
	if strings.Contains(s.Logs(), "s3cr3t-admin-token") {
		t.Error("the admin token was logged")
	}
}
