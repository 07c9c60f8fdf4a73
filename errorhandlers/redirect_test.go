package errorhandlers

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/portcullis-proxy/portcullis/pipeline"
)

func buildHandler(t *testing.T, f pipeline.Factory[pipeline.ErrorHandler], cfg string) (pipeline.ErrorHandler, error) {
	t.Helper()
	b, err := f(nil, pipeline.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	return b.Build(json.RawMessage(cfg))
}

func TestRedirect(t *testing.T) {
	cases := []struct {
		name, cfg, target string
		header            map[string]string // set on the request
		wantCode          int
		wantLoc           string
	}{
		{"default code, no return_to", `{"to":"http://login.test/ui/login"}`, "http://app.test/dashboard", nil,
			http.StatusFound, "http://login.test/ui/login"},
		{"return_to carries the original URL", `{"to":"http://login.test/ui/login?aal=aal1","return_to_query_param":"return_to","code":303}`,
			"http://app.test/dashboard?tab=2", nil,
			http.StatusSeeOther, "http://login.test/ui/login?aal=aal1&return_to=http%3A%2F%2Fapp.test%2Fdashboard%3Ftab%3D2"},
		// A request the front ends did not make absolute (their own
		// requests carry the scheme and host they decided on).
		{"forwarded headers describe the original URL", `{"to":"/login","return_to_query_param":"return_to"}`, "/decisions/x",
			map[string]string{"X-Forwarded-Proto": "https", "X-Forwarded-Host": "app.example", "X-Forwarded-Uri": "/orders/7?view=full"},
			http.StatusFound, "/login?return_to=https%3A%2F%2Fapp.example%2Forders%2F7%3Fview%3Dfull"},
		{"an absolute URL from a front end wins over the client's headers", `{"to":"/login","return_to_query_param":"return_to"}`,
			"http://app.example/orders/7", map[string]string{"X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "https"},
			http.StatusFound, "/login?return_to=http%3A%2F%2Fapp.example%2Forders%2F7"},
		{"temporary redirect keeps the method", `{"to":"https://login.test/","code":307}`, "http://app.test/", nil,
			http.StatusTemporaryRedirect, "https://login.test/"},
	}
	for _, tc := range cases {
		h, err := buildHandler(t, pipeline.TypedFactory(NewRedirect), tc.cfg)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		r := httptest.NewRequest(http.MethodGet, tc.target, nil)
		for k, v := range tc.header {
			r.Header.Set(k, v)
		}
		w := httptest.NewRecorder()
		e := pipeline.Unauthorized("no session", nil)
		h.HandleError(w, r, e)
		if w.Code != tc.wantCode || w.Header().Get("Location") != tc.wantLoc {
			t.Errorf("%s: %d %q, want %d %q", tc.name, w.Code, w.Header().Get("Location"), tc.wantCode, tc.wantLoc)
		}
		if w.Header().Get("Cache-Control") != "no-store" {
			t.Errorf("%s: redirect may be cached", tc.name)
		}
	}
}

func TestRedirectConfigErrors(t *testing.T) {
	cases := []struct{ cfg, want string }{
		{`{}`, "to"},
		{`{"to":"login"}`, "to"},
		{`{"to":"http://l/","code":200}`, "code"},
		{`{"to":"http://l/","code":404}`, "code"},
		{`{"to":"http://l/","return_to":"x"}`, "return_to"},
	}
	for _, tc := range cases {
		_, err := buildHandler(t, pipeline.TypedFactory(NewRedirect), tc.cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Build(%s) error = %v, want one naming %q", tc.cfg, err, tc.want)
		}
	}
}
