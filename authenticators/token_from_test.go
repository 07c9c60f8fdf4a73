package authenticators

import (
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"

	"github.com/portcullis-proxy/portcullis/pipeline"
)

func TestTokenLocationExtract(t *testing.T) {
	tests := []struct {
		name string
		loc  *TokenLocation
		prep func(r *http.Request)
		want string
	}{
		{"default bearer", nil, func(r *http.Request) { r.Header.Set("Authorization", "Bearer abc") }, "abc"},
		{"default bearer lower case", nil, func(r *http.Request) { r.Header.Set("Authorization", "bearer abc") }, "abc"},
		{"default basic is not a token", nil, func(r *http.Request) { r.Header.Set("Authorization", "Basic abc") }, ""},
		{"explicit authorization header", &TokenLocation{Header: "authorization"}, func(r *http.Request) { r.Header.Set("Authorization", "Bearer xyz") }, "xyz"},
		{"custom header raw", &TokenLocation{Header: "X-Token"}, func(r *http.Request) { r.Header.Set("X-Token", "raw") }, "raw"},
		{"query", &TokenLocation{QueryParameter: "access_token"}, func(r *http.Request) { r.URL.RawQuery = "access_token=q1&x=2" }, "q1"},
		{"cookie", &TokenLocation{Cookie: "tok"}, func(r *http.Request) { r.AddCookie(&http.Cookie{Name: "tok", Value: "c1"}) }, "c1"},
		{"cookie missing", &TokenLocation{Cookie: "tok"}, func(r *http.Request) {}, ""},
		{"query location ignores header", &TokenLocation{QueryParameter: "t"}, func(r *http.Request) { r.Header.Set("Authorization", "Bearer abc") }, ""},
	}
	for _, tt := range tests {
		r := httptest.NewRequest("GET", "http://example.test/p", nil)
		tt.prep(r)
		if got := tt.loc.Extract(r); got != tt.want {
			t.Errorf("%s: Extract = %q, want %q", tt.name, got, tt.want)
		}
	}
	if err := (&TokenLocation{Header: "a", Cookie: "b"}).Validate(); err == nil {
		t.Error("two locations must not validate")
	}
	if got := (&TokenLocation{QueryParameter: "t"}).Carriers(); !slices.Equal(got.QueryParams, []string{"t"}) {
		t.Errorf("Carriers = %+v, want the query parameter t", got)
	}
	for _, l := range []*TokenLocation{nil, {Header: "X-Token"}, {Cookie: "c"}} {
		if got := l.Carriers(); len(got.QueryParams) != 0 {
			t.Errorf("%+v: Carriers = %+v, want none", l, got)
		}
	}
	var s pipeline.Session
	(&TokenLocation{QueryParameter: "t"}).Taken(&s, "")
	if len(s.Scrub.QueryParams) != 0 {
		t.Errorf("an absent token recorded a carrier: %+v", s.Scrub)
	}
	(&TokenLocation{Header: "X-Token"}).Taken(&s, "abc")
	(&TokenLocation{QueryParameter: "t"}).Taken(&s, "abc")
	if !slices.Equal(s.Scrub.QueryParams, []string{"t"}) {
		t.Errorf("Taken recorded %+v, want only the query parameter t", s.Scrub.QueryParams)
	}
}
