package handlertest_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/portcullis-proxy/portcullis/testsupport/handlertest"
)

// request is what echo answers about the request it got.
type request struct {
	Method, URI, ContentType, Authorization, Body string
}

// echo answers every request with its request, as JSON; a request that
// has no Authorization header is answered 401 with the same body.
func echo(t *testing.T) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if r.Header.Get("Authorization") == "" {
			w.WriteHeader(http.StatusUnauthorized)
		}
		json.NewEncoder(w).Encode(request{r.Method, r.RequestURI, r.Header.Get("Content-Type"), r.Header.Get("Authorization"), string(b)})
	}))
	t.Cleanup(srv.Close)
	return srv
}

// PostJSON sends the body and header as JSON, and decodes only a 200.
func TestPostJSON(t *testing.T) {
	srv := echo(t)
	var got request
	res := handlertest.PostJSON(t, srv.URL+"/x", http.Header{"Authorization": {"Bearer t"}}, `{"say":"hi"}`, &got)
	if want := (request{"POST", "/x", "application/json", "Bearer t", `{"say":"hi"}`}); res.StatusCode != http.StatusOK || got != want {
		t.Errorf("status %d, request %+v; want 200 and %+v", res.StatusCode, got, want)
	}
	got = request{}
	if res := handlertest.PostJSON(t, srv.URL, nil, `{}`, &got); res.StatusCode != http.StatusUnauthorized || got != (request{}) {
		t.Errorf("without the header: status %d, decoded %+v; want 401, nothing decoded", res.StatusCode, got)
	}
}

// RawRequest sends the head as written, ends it, and reads the whole
// answer.
func TestRawRequest(t *testing.T) {
	srv := echo(t)
	res, body, err := handlertest.RawRequest(t, srv.Listener.Addr().String(), "GET /a//b?x HTTP/1.1\r\nHost: raw.test\r\nAuthorization: raw\r\n")
	if err != nil {
		t.Fatal(err)
	}
	var got request
	if err := json.Unmarshal(body, &got); err != nil || res.StatusCode != http.StatusOK || got.URI != "/a//b?x" || got.Authorization != "raw" {
		t.Errorf("RawRequest = %d, %+v (%v); want 200 and the request as sent", res.StatusCode, got, err)
	}
}
