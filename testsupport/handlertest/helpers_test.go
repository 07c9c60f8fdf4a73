package handlertest_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portcullis-proxy/portcullis/pipeline"
	"github.com/portcullis-proxy/portcullis/testsupport/handlertest"
)

// PostJSON sends the body and header and decodes only a 200.
func TestPostJSON(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" || r.Header.Get("Authorization") != "Bearer t" {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		var in map[string]string
		json.NewDecoder(r.Body).Decode(&in)
		fmt.Fprintf(w, `{"echo":%q}`, in["say"])
	}))
	defer srv.Close()
	var out struct{ Echo string }
	if res := handlertest.PostJSON(t, srv.URL, http.Header{"Authorization": {"Bearer t"}}, `{"say":"hi"}`, &out); res.StatusCode != http.StatusOK || out.Echo != "hi" {
		t.Errorf("status %d, decoded %+v; want 200 and hi", res.StatusCode, out)
	}
	out.Echo = ""
	if res := handlertest.PostJSON(t, srv.URL, nil, `{"say":"hi"}`, &out); res.StatusCode != http.StatusBadRequest || out.Echo != "" {
		t.Errorf("without the header: status %d, decoded %+v; want 400, nothing decoded", res.StatusCode, out)
	}
}

// RawRequest sends the head as written, ends it, and reads the whole
// answer.
func TestRawRequest(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s %s %s", r.Method, r.RequestURI, r.Header.Get("X-Raw"))
	}))
	defer srv.Close()
	res, body, err := handlertest.RawRequest(t, srv.Listener.Addr().String(), "GET /a//b?x HTTP/1.1\r\nHost: raw.test\r\nX-Raw: 1\r\n")
	if err != nil || res.StatusCode != http.StatusOK || string(body) != "GET /a//b?x 1" {
		t.Errorf("RawRequest = %v, %q, %v; want 200 and the request as sent", res, body, err)
	}
}

// WaitFor returns once the condition holds.
func TestWaitFor(t *testing.T) {
	var n atomic.Int32
	go func() {
		for range 3 {
			time.Sleep(10 * time.Millisecond)
			n.Add(1)
		}
	}()
	handlertest.WaitFor(t, "three ticks", 10*time.Second, func() bool { return n.Load() == 3 })
}

// Enable and Build make the handler a rule gets, with the rule's config.
func TestEnableAndBuild(t *testing.T) {
	type config struct{ Name string }
	f := pipeline.TypedFactory(func(c *config, _ pipeline.Deps) (string, error) { return "hello " + c.Name, nil })
	b := handlertest.Enable(t, f, nil, handlertest.Deps(t))
	if got := handlertest.Build(t, b, handlertest.JSON(t, map[string]string{"Name": "rule"})); got != "hello rule" {
		t.Errorf("Build = %q, want hello rule", got)
	}
}
