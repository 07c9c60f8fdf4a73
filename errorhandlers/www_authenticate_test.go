package errorhandlers

import (
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
		// Oathkeeper's pipeline/errors/error_www_authenticate_test.go: the
		// realm is written as configured.
		{"defaults", `{}`, pipeline.Unauthorized("no session", nil), 401, `Basic realm=Please authenticate.`},
		{"realm", `{"realm":"foobar"}`, pipeline.Unauthorized("no session", nil), 401, `Basic realm=foobar`},
		{"bearer scheme", `{"realm":"api","scheme":"Bearer"}`, pipeline.Unauthorized("no session", nil), 401, `Bearer realm=api`},
		// As in Oathkeeper, an error the handler is chosen for becomes a
		// 401 challenge: still a denial.
		{"deny becomes a challenge", `{"realm":"foobar"}`, pipeline.Forbidden("denied", nil), 401, `Basic realm=foobar`},
		{"identity provider down becomes a challenge", `{}`, pipeline.Unavailable("identity provider unavailable", nil), 401, `Basic realm=Please authenticate.`},
	}
	for _, tc := range cases {
		h, err := buildHandler(t, pipeline.TypedFactory(NewWWWAuthenticate), tc.cfg)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		r := httptest.NewRequest(http.MethodGet, "http://api.test/v1", nil)
		w := httptest.NewRecorder()
		h.HandleError(w, r, tc.err)
		if w.Code != tc.wantCode || w.Header().Get("WWW-Authenticate") != tc.wantHeader {
			t.Errorf("%s: %d %q, want %d %q", tc.name, w.Code, w.Header().Get("WWW-Authenticate"), tc.wantCode, tc.wantHeader)
		}
		if got := strings.TrimSpace(w.Body.String()); got != "Unauthorized" {
			t.Errorf("%s: body %q, want Unauthorized", tc.name, got)
		}
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
		_, err := buildHandler(t, pipeline.TypedFactory(NewWWWAuthenticate), tc.cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Build(%s) error = %v, want one naming %q", tc.cfg, err, tc.want)
		}
	}
}
