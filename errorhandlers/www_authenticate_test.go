package errorhandlers

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/portcullis-proxy/portcullis/pipeline"
)

func TestWWWAuthenticate(t *testing.T) {
	cases := []struct {
		name       string
		cfg        string
		err        error
		wantCode   int
		wantHeader string
	}{
		{"defaults", `{}`, pipeline.Unauthorized("no session", nil), 401, `Basic realm="Please authenticate."`},
		{"bearer scheme", `{"realm":"api","scheme":"Bearer"}`, pipeline.Unauthorized("no session", nil), 401, `Bearer realm="api"`},
		{"quotes escaped", `{"realm":"the \"inner\" \\ realm"}`, pipeline.Unauthorized("x", nil), 401, `Basic realm="the \"inner\" \\ realm"`},
		{"forbidden is not a challenge", `{}`, pipeline.Forbidden("denied", nil), 403, ""},
		{"identity provider down is not a challenge", `{}`, pipeline.Unavailable("identity provider unavailable", nil), 503, ""},
	}
	for _, tc := range cases {
		h, err := buildHandler(t, NewWWWAuthenticate, tc.cfg)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		r := httptest.NewRequest(http.MethodGet, "http://api.test/v1", nil)
		w := httptest.NewRecorder()
		h.HandleError(w, r, tc.err)
		if w.Code != tc.wantCode || w.Header().Get("WWW-Authenticate") != tc.wantHeader {
			t.Errorf("%s: %d %q, want %d %q", tc.name, w.Code, w.Header().Get("WWW-Authenticate"), tc.wantCode, tc.wantHeader)
		}
		var body pipeline.ErrorBody
		if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || body.Error.Code != tc.wantCode {
			t.Errorf("%s: body %q is not the JSON error (%v)", tc.name, w.Body.String(), err)
		}
	}
}

func TestWWWAuthenticateWhen(t *testing.T) {
	h, err := buildHandler(t, NewWWWAuthenticate, `{"when":[{"error":["unauthorized"],"request":{"header":{"accept":["application/json"]}}}]}`)
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest(http.MethodGet, "http://api.test/v1", nil)
	r.Header.Set("Accept", "application/json")
	if !h.Matches(r, pipeline.Unauthorized("x", nil)) {
		t.Error("did not match an API client's 401")
	}
	if h.Matches(r, pipeline.Forbidden("x", nil)) {
		t.Error("matched a 403 it does not list")
	}
	r.Header.Set("Accept", "text/html")
	if h.Matches(r, pipeline.Unauthorized("x", nil)) {
		t.Error("matched a browser")
	}
}

func TestWWWAuthenticateConfigErrors(t *testing.T) {
	cases := []struct{ cfg, want string }{
		{`{"scheme":""}`, "scheme"},
		{`{"scheme":"Bad Scheme"}`, "scheme"},
		{`{"realm":"a\r\nX-Injected: 1"}`, "realm"},
		{`{"realm":"r","code":401}`, "code"},
	}
	for _, tc := range cases {
		_, err := buildHandler(t, NewWWWAuthenticate, tc.cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Build(%s) error = %v, want one naming %q", tc.cfg, err, tc.want)
		}
	}
}
