package tokenfrom

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestExtract(t *testing.T) {
	tests := []struct {
		name string
		loc  *Location
		prep func(r *http.Request)
		want string
	}{
		{"default bearer", nil, func(r *http.Request) { r.Header.Set("Authorization", "Bearer abc") }, "abc"},
		{"default bearer lower case", nil, func(r *http.Request) { r.Header.Set("Authorization", "bearer abc") }, "abc"},
		{"default basic is not a token", nil, func(r *http.Request) { r.Header.Set("Authorization", "Basic abc") }, ""},
		{"explicit authorization header", &Location{Header: "authorization"}, func(r *http.Request) { r.Header.Set("Authorization", "Bearer xyz") }, "xyz"},
		{"custom header raw", &Location{Header: "X-Token"}, func(r *http.Request) { r.Header.Set("X-Token", "raw") }, "raw"},
		{"query", &Location{QueryParameter: "access_token"}, func(r *http.Request) { r.URL.RawQuery = "access_token=q1&x=2" }, "q1"},
		{"cookie", &Location{Cookie: "tok"}, func(r *http.Request) { r.AddCookie(&http.Cookie{Name: "tok", Value: "c1"}) }, "c1"},
		{"cookie missing", &Location{Cookie: "tok"}, func(r *http.Request) {}, ""},
		{"query location ignores header", &Location{QueryParameter: "t"}, func(r *http.Request) { r.Header.Set("Authorization", "Bearer abc") }, ""},
	}
	for _, tt := range tests {
		r := httptest.NewRequest("GET", "http://example.test/p", nil)
		tt.prep(r)
		if got := tt.loc.Extract(r); got != tt.want {
			t.Errorf("%s: Extract = %q, want %q", tt.name, got, tt.want)
		}
	}
	if err := (&Location{Header: "a", Cookie: "b"}).Validate(); err == nil {
		t.Error("two locations must not validate")
	}
	if got := (&Location{QueryParameter: "t"}).ScrubQueryParameter(); got != "t" {
		t.Errorf("ScrubQueryParameter = %q", got)
	}
}
