package proxy_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"

	"github.com/portcullis-proxy/portcullis/proxy"
	"github.com/portcullis-proxy/portcullis/testsupport/handlertest"
	"github.com/portcullis-proxy/portcullis/testsupport/handlertest/ruleset"
)

// explainRules: /open/ is allowed and names the subject, /closed/ denied.
var explainRules = handlertest.Rules(
	handlertest.Rule{ID: "open", URL: "http://<[^/]+>/open/<.*>", Mutators: []string{"header"}, Upstream: "UPSTREAM"},
	handlertest.Rule{ID: "closed", URL: "http://<[^/]+>/closed/<.*>", Authorizer: "deny", Upstream: "UPSTREAM"},
)

func TestExplainHandler(t *testing.T) {
	set := ruleSet(t, withUpstream(explainRules, "http://127.0.0.1:1"))
	srv := serve(t, proxy.ExplainHandler(ruleset.Static{Set: set}))
	post := func(body string) (*http.Response, proxy.Explanation) {
		t.Helper()
		var ex proxy.Explanation
		return handlertest.PostJSON(t, srv.URL, nil, body, &ex), ex
	}

	res, ex := post(`{"method":"GET","url":"http://app.example/closed/x?access_token=t0k3n"}`)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("status %d, want 200", res.StatusCode)
	}
	if ex.Rule != "closed" || ex.Decision != "denied" || ex.Status != http.StatusForbidden {
		t.Errorf("rule %q, decision %q, status %d; want closed, denied, 403", ex.Rule, ex.Decision, ex.Status)
	}
	if len(ex.Stages) != 2 || ex.Stages[0].Handler != "anonymous" || ex.Stages[0].Outcome != "accepted" ||
		ex.Stages[1].Handler != "deny" || ex.Stages[1].Outcome != "denied" {
		t.Errorf("stages %+v, want anonymous accepted then deny denied", ex.Stages)
	}
	if len(ex.Query) != 1 || ex.Query[0] != "access_token" {
		t.Errorf("query %q, want the parameter's name only", ex.Query)
	}

	_, ex = post(`{"url":"http://app.example/open/x","headers":{"Authorization":"Bearer abc"}}`)
	if ex.Decision != "denied" || ex.Status != http.StatusUnauthorized || len(ex.Stages) != 1 || ex.Stages[0].Outcome != "not responsible" {
		t.Errorf("with a credential anonymous steps aside: got %+v", ex)
	}

	_, ex = post(`{"url":"http://app.example/open/x"}`)
	if ex.Decision != "allowed" || ex.Headers["X-User"] != "anonymous" {
		t.Errorf("allowed: decision %q, headers %v; want allowed with X-User anonymous", ex.Decision, ex.Headers)
	}

	for _, bad := range []string{`{"url":"/relative"}`, `{"url":"http://app.example/","bogus":1}`, `not json`} {
		res, _ := post(bad)
		if res.StatusCode != http.StatusBadRequest || !strings.HasPrefix(res.Header.Get("Content-Type"), "application/json") {
			t.Errorf("%s: status %d (%s), want a 400 JSON error", bad, res.StatusCode, res.Header.Get("Content-Type"))
		}
	}
	if res, err := http.Get(srv.URL); err != nil || res.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET: %v %v, want 405", res.StatusCode, err)
	}
}

// Every denial's request line names the authenticator that decided (or
// that none was responsible), the authorizer's verdict and the reason, in
// the proxy and the decision API alike, and never the credential.
func TestDenialLogNamesTheDecider(t *testing.T) {
	up := echoUpstream(t)
	var out lockedBuffer
	l := logTo(&out)
	l.SetFormatter(&logrus.JSONFormatter{})
	opts := logged(ruleSet(t, withUpstream(explainRules, up.URL)), l)
	front := serve(t, proxy.NewHandler(proxy.HandlerOptions{DecisionOptions: opts}))
	api := serve(t, proxy.NewAPI(proxy.APIOptions{DecisionOptions: opts}))

	for _, tc := range []struct {
		path, auth string
		want       map[string]string
	}{
		{"/closed/x", "", map[string]string{"authenticator": "anonymous", "authorizer": "deny: denied", "reason": "Access is forbidden"}},
		{"/open/x", "Bearer s3cr3t-token", map[string]string{"authenticator": "none responsible", "authorizer": "not reached",
			"reason": "Access credentials are invalid: no authenticator was responsible for the request"}},
		{"/nowhere", "", map[string]string{"reason": "Requested url does not match any rules"}},
	} {
		for _, base := range []string{front.URL, api.URL + "/decisions"} {
			out.Reset()
			req, _ := http.NewRequest("GET", base+tc.path, nil)
			if tc.auth != "" {
				req.Header.Set("Authorization", tc.auth)
			}
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			var line map[string]any
			if err := json.Unmarshal([]byte(strings.TrimSpace(out.String())), &line); err != nil {
				t.Fatalf("%s%s: log %q: %v", base, tc.path, out.String(), err)
			}
			for k, v := range tc.want {
				// The no-match reason names the method and URL tried after
				// Oathkeeper's text.
				if got, _ := line[k].(string); got != v && !(k == "reason" && strings.HasPrefix(got, v+": ")) {
					t.Errorf("%s%s: %s = %v, want %q", base, tc.path, k, line[k], v)
				}
			}
			if line["decision"] != "denied" {
				t.Errorf("%s%s: decision %v, want denied", base, tc.path, line["decision"])
			}
			if strings.Contains(out.String(), "s3cr3t") {
				t.Errorf("%s%s: the log shows the credential: %s", base, tc.path, out.String())
			}
		}
	}
}
