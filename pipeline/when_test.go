package pipeline

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestWhens(t *testing.T) {
	unauthorized := Unauthorized("no", nil)
	forbidden := Forbidden("no", nil)
	req := func(accept, ct, remote, xff string) *http.Request {
		r := httptest.NewRequest("GET", "/", nil)
		if accept != "" {
			r.Header.Set("Accept", accept)
		}
		if ct != "" {
			r.Header.Set("Content-Type", ct)
		}
		if xff != "" {
			r.Header.Set("X-Forwarded-For", xff)
		}
		r.RemoteAddr = remote
		return r
	}
	browser := "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
	cases := []struct {
		name  string
		when  []When
		r     *http.Request
		err   error
		match bool
	}{
		{"empty matches all", nil, req("", "", "1.2.3.4:1", ""), forbidden, true},
		{"error listed", []When{{Error: []string{"unauthorized"}}}, req("", "", "1.2.3.4:1", ""), unauthorized, true},
		{"error not listed", []When{{Error: []string{"unauthorized"}}}, req("", "", "1.2.3.4:1", ""), forbidden, false},
		{"browser accept", []When{{Request: &WhenRequest{Header: &WhenHeader{Accept: []string{"text/html"}}}}}, req(browser, "", "1.2.3.4:1", ""), unauthorized, true},
		{"curl accept", []When{{Request: &WhenRequest{Header: &WhenHeader{Accept: []string{"text/html"}}}}}, req("*/*", "", "1.2.3.4:1", ""), unauthorized, false},
		{"json client", []When{{Request: &WhenRequest{Header: &WhenHeader{Accept: []string{"text/*"}}}}}, req("application/json", "", "1.2.3.4:1", ""), unauthorized, false},
		{"q=0 excluded", []When{{Request: &WhenRequest{Header: &WhenHeader{Accept: []string{"text/html"}}}}}, req("text/html;q=0, application/json", "", "1.2.3.4:1", ""), unauthorized, false},
		{"content type", []When{{Request: &WhenRequest{Header: &WhenHeader{ContentType: []string{"application/json"}}}}}, req("", "application/json; charset=utf-8", "1.2.3.4:1", ""), unauthorized, true},
		{"cidr in", []When{{Request: &WhenRequest{RemoteIP: &WhenRemoteIP{Match: []string{"10.0.0.0/8"}}}}}, req("", "", "10.1.2.3:5", ""), unauthorized, true},
		{"cidr out", []When{{Request: &WhenRequest{RemoteIP: &WhenRemoteIP{Match: []string{"10.0.0.0/8"}}}}}, req("", "", "192.0.2.1:5", "10.1.1.1"), unauthorized, false},
		{"cidr forwarded", []When{{Request: &WhenRequest{RemoteIP: &WhenRemoteIP{Match: []string{"10.0.0.0/8"}, RespectForwardedForHeader: true}}}}, req("", "", "192.0.2.1:5", "10.1.1.1"), unauthorized, true},
		{"any of several", []When{{Error: []string{"forbidden"}}, {Error: []string{"unauthorized"}}}, req("", "", "1.2.3.4:1", ""), unauthorized, true},
	}
	for _, tc := range cases {
		w, err := CompileWhens(tc.when)
		if err != nil {
			t.Fatal(err)
		}
		if got := w.Matches(tc.r, tc.err); got != tc.match {
			t.Errorf("%s: Matches = %v, want %v", tc.name, got, tc.match)
		}
	}
	if _, err := CompileWhens([]When{{Request: &WhenRequest{RemoteIP: &WhenRemoteIP{Match: []string{"nope"}}}}}); err == nil {
		t.Error("invalid CIDR compiled")
	}
}

func TestStatusIDAndErrors(t *testing.T) {
	for status, want := range map[int]string{401: "unauthorized", 403: "forbidden", 500: "internal_server_error", 404: "not_found", 503: "service_unavailable"} {
		if got := StatusID(status); got != want {
			t.Errorf("StatusID(%d) = %q, want %q", status, got, want)
		}
	}
	err := Unauthorized("bad token", errString("expired"))
	if StatusOf(err) != 401 || err.Error() != "bad token: expired" {
		t.Errorf("Unauthorized: %d %q", StatusOf(err), err.Error())
	}
	if StatusOf(errString("x")) != 500 {
		t.Error("foreign errors must be 500")
	}
}
