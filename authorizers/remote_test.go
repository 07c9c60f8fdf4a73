package authorizers

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/portcullis-proxy/portcullis/pipeline"
	"github.com/portcullis-proxy/portcullis/testsupport/handlertest"

	"github.com/portcullis-proxy/portcullis/testsupport/faultinject"
)

// decisionAPI is a real HTTP decision endpoint on loopback. It records the
// last call and answers with the status the test chose.
type decisionAPI struct {
	*httptest.Server
	mu     sync.Mutex
	status int
	header http.Header
	got    struct {
		body   string
		header http.Header
		method string
	}
	calls atomic.Int32
}

func newDecisionAPI(t *testing.T, status int) *decisionAPI {
	d := &decisionAPI{status: status, header: http.Header{}}
	d.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d.calls.Add(1)
		b, _ := io.ReadAll(r.Body)
		d.mu.Lock()
		defer d.mu.Unlock()
		d.got.body, d.got.header, d.got.method = string(b), r.Header.Clone(), r.Method
		for k, v := range d.header {
			w.Header()[k] = v
		}
		w.WriteHeader(d.status)
	}))
	t.Cleanup(d.Close)
	return d
}

func (d *decisionAPI) answer(status int, header http.Header) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.status = status
	d.header = header
}

// hangingAPI is a fault injector: it accepts connections and never answers,
// the failure a real decision API shows when it is overloaded.
func hangingAPI(t *testing.T) string {
	return faultinject.HangingURL(t)
}

func buildAuthorizer(t *testing.T, f pipeline.Factory[pipeline.Authorizer], global, rule map[string]any) pipeline.Authorizer {
	t.Helper()
	deps, _ := handlertest.DepsWithLog(t)
	b := handlertest.Enable(t, f, handlertest.JSON(t, global), deps)
	a := handlertest.Build(t, b, handlertest.JSON(t, rule))
	return a
}

func requestWithBody(t *testing.T, method, rawURL, body string, groups ...string) (*http.Request, *pipeline.Session) {
	t.Helper()
	r := httptest.NewRequest(method, rawURL, strings.NewReader(body))
	r.RemoteAddr = "127.0.0.1:4000"
	u, _ := url.Parse(rawURL)
	s := pipeline.NewSession(r, u, groups)
	s.Subject = "alice"
	s.Extra = map[string]any{"identity": map[string]any{"traits": map[string]any{"email": "alice@example.test"}}}
	return r, s
}

func TestRemoteForwardsBodyAndHeaders(t *testing.T) {
	api := newDecisionAPI(t, http.StatusOK)
	api.answer(http.StatusOK, http.Header{"X-Decision-Id": {"d-1"}})
	az := buildAuthorizer(t, pipeline.TypedFactory(NewRemote), map[string]any{"remote": api.URL + "/authorize"}, map[string]any{
		"headers":                              map[string]string{"X-Subject": "{{ .Subject }}", "X-Empty": "{{ print .Extra.none }}"},
		"forward_response_headers_to_upstream": []string{"x-decision-id"},
	})
	r, s := requestWithBody(t, http.MethodPost, "http://gw.test/orders", `{"item":1}`)
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("Authorization", "Bearer client-token")
	if err := az.Authorize(r, s); err != nil {
		t.Fatalf("Authorize = %v, want allowed", err)
	}
	api.mu.Lock()
	got := api.got
	api.mu.Unlock()
	if got.method != http.MethodPost || got.body != `{"item":1}` {
		t.Errorf("API saw %s %q, want POST of the request body", got.method, got.body)
	}
	for k, want := range map[string]string{"Content-Type": "application/json", "Authorization": "Bearer client-token", "X-Subject": "alice"} {
		if v := got.header.Get(k); v != want {
			t.Errorf("API saw %s %q, want %q", k, v, want)
		}
	}
	if _, ok := got.header["X-Empty"]; ok {
		t.Error("a header that renders empty must not be sent")
	}
	if v := s.Header.Get("X-Decision-Id"); v != "d-1" {
		t.Errorf("forwarded header = %q, want d-1", v)
	}
	// The upstream still gets the body.
	if b, _ := io.ReadAll(r.Body); string(b) != `{"item":1}` {
		t.Errorf("request body after authorization = %q, want it intact", b)
	}
}

func TestRemoteJSONPayloadAndDecisions(t *testing.T) {
	api := newDecisionAPI(t, http.StatusOK)
	az := buildAuthorizer(t, pipeline.TypedFactory(NewRemoteJSON), map[string]any{"remote": api.URL}, map[string]any{
		"payload": `{"subject": {{ .Subject | toJson }}, "room": "{{ printIndex .MatchContext.RegexpCaptureGroups 0 }}", "email": "{{ .Extra.identity.traits.email }}"}`,
	})
	tests := []struct {
		answer     int
		header     http.Header
		wantStatus int
	}{
		{http.StatusOK, nil, 0},
		{http.StatusForbidden, nil, http.StatusForbidden},
		// Oathkeeper (pipeline/authz/remote_json.go): 403 denies, anything
		// else but 200 is a 500.
		{http.StatusUnauthorized, nil, http.StatusInternalServerError},
		{http.StatusTooManyRequests, http.Header{"Retry-After": {"7"}}, http.StatusTooManyRequests},
		{http.StatusInternalServerError, nil, http.StatusServiceUnavailable},
		{http.StatusServiceUnavailable, nil, http.StatusServiceUnavailable},
		{http.StatusNotFound, nil, http.StatusInternalServerError},
		{http.StatusBadRequest, nil, http.StatusInternalServerError},
		{http.StatusNoContent, nil, http.StatusInternalServerError},
		{http.StatusFound, http.Header{"Location": {"http://elsewhere.test/"}}, http.StatusInternalServerError},
	}
	for _, tt := range tests {
		api.answer(tt.answer, tt.header)
		r, s := requestWithBody(t, http.MethodGet, "http://gw.test/ws/lobby", "", "lobby")
		r.Header.Set("Authorization", "Bearer t")
		err := az.Authorize(r, s)
		if got := statusOrZero(err); got != tt.wantStatus {
			t.Errorf("API answered %d: Authorize = %v (%d), want %d", tt.answer, err, got, tt.wantStatus)
		}
		if tt.answer == http.StatusTooManyRequests {
			var pe *pipeline.Error
			if !errors.As(err, &pe) || pe.Header.Get("Retry-After") != "7" {
				t.Errorf("429 must carry the API's Retry-After, got %v", err)
			}
		}
	}
	api.mu.Lock()
	got := api.got
	api.mu.Unlock()
	var doc map[string]string
	if err := json.Unmarshal([]byte(got.body), &doc); err != nil {
		t.Fatalf("payload %q is not JSON: %v", got.body, err)
	}
	if doc["subject"] != "alice" || doc["room"] != "lobby" || doc["email"] != "alice@example.test" {
		t.Errorf("payload = %v", doc)
	}
	if ct := got.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q", ct)
	}
}

// A request the authorizer cannot send as configured is refused before
// the decision API sees it: a body over the limit (413), a payload that
// does not render a JSON text (500).
func TestRemoteRefusesWithoutCalling(t *testing.T) {
	for _, tc := range []struct {
		name, method, target, body string
		factory                    pipeline.Factory[pipeline.Authorizer]
		rule                       map[string]any
		want                       int
	}{
		{"a body over the limit", http.MethodPost, "http://gw.test/upload", strings.Repeat("x", maxForwardedBody+1),
			pipeline.TypedFactory(NewRemote), nil, http.StatusRequestEntityTooLarge},
		{"an invalid payload", http.MethodGet, "http://gw.test/", "",
			pipeline.TypedFactory(NewRemoteJSON), map[string]any{"payload": `{"subject": "{{ .Subject }}"`}, http.StatusInternalServerError},
	} {
		api := newDecisionAPI(t, http.StatusOK)
		az := buildAuthorizer(t, tc.factory, map[string]any{"remote": api.URL}, tc.rule)
		r, s := requestWithBody(t, tc.method, tc.target, tc.body)
		if err := az.Authorize(r, s); pipeline.StatusOf(err) != tc.want {
			t.Errorf("%s: Authorize = %v, want %d", tc.name, err, tc.want)
		}
		if api.calls.Load() != 0 {
			t.Errorf("%s must not be sent", tc.name)
		}
	}
}

func TestRemoteFailsClosed(t *testing.T) {
	flaky := newDecisionAPI(t, http.StatusServiceUnavailable)
	tests := []struct {
		name   string
		remote string
		extra  map[string]any
	}{
		{"closed port", faultinject.RefusingURL(t), nil},
		{"never answers", hangingAPI(t), map[string]any{"timeout": "100ms"}},
		{"never answers with retries", hangingAPI(t), map[string]any{"timeout": "50ms", "retry": map[string]any{"max_delay": "5ms", "give_up_after": "120ms"}}},
		{"keeps failing with retries", flaky.URL, map[string]any{"retry": map[string]any{"max_delay": "1ms", "give_up_after": "30ms"}}},
	}
	for _, f := range []struct {
		name    string
		factory pipeline.Factory[pipeline.Authorizer]
	}{{"remote", pipeline.TypedFactory(NewRemote)}, {"remote_json", pipeline.TypedFactory(NewRemoteJSON)}} {
		for _, tt := range tests {
			cfg := map[string]any{"remote": tt.remote, "payload": `{"s":"{{ .Subject }}"}`}
			for k, v := range tt.extra {
				cfg[k] = v
			}
			az := buildAuthorizer(t, f.factory, cfg, nil)
			r, s := requestWithBody(t, http.MethodGet, "http://gw.test/", "")
			r.Header.Set("Authorization", "Bearer secret-token")
			err := az.Authorize(r, s)
			if !errors.Is(err, pipeline.ErrServiceUnavailable) {
				t.Errorf("%s, %s: Authorize = %v, want 503", f.name, tt.name, err)
			}
			if err != nil && strings.Contains(err.Error(), "secret-token") {
				t.Errorf("%s, %s: error leaks the credential: %v", f.name, tt.name, err)
			}
		}
	}
}

func TestRemoteRetryRecovers(t *testing.T) {
	api := faultinject.FlakyAPI(t, 2, http.StatusBadGateway, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	az := buildAuthorizer(t, pipeline.TypedFactory(NewRemoteJSON), map[string]any{"remote": api.URL, "payload": `{}`, "retry": map[string]any{"max_delay": "1ms", "give_up_after": "1m"}}, nil)
	r, s := requestWithBody(t, http.MethodGet, "http://gw.test/", "")
	if err := az.Authorize(r, s); err != nil {
		t.Errorf("Authorize = %v, want allowed after retries", err)
	}
	if n := api.Attempts(); n != 3 {
		t.Errorf("API saw %d attempts, want 3", n)
	}
}

func TestRemoteConfigErrors(t *testing.T) {
	deps, _ := handlertest.DepsWithLog(t)
	tests := []struct {
		name    string
		factory pipeline.Factory[pipeline.Authorizer]
		cfg     map[string]any
	}{
		{"remote missing", pipeline.TypedFactory(NewRemote), map[string]any{}},
		{"remote not http", pipeline.TypedFactory(NewRemote), map[string]any{"remote": "file:///etc/passwd"}},
		{"unknown key", pipeline.TypedFactory(NewRemote), map[string]any{"remote": "http://127.0.0.1:1", "forward_response_headers": []string{"x"}}},
		{"bad retry key", pipeline.TypedFactory(NewRemote), map[string]any{"remote": "http://127.0.0.1:1", "retry": map[string]any{"maxdelay": "1s"}}},
		{"bad header template", pipeline.TypedFactory(NewRemote), map[string]any{"remote": "http://127.0.0.1:1", "headers": map[string]string{"X": "{{"}}},
		{"json payload missing", pipeline.TypedFactory(NewRemoteJSON), map[string]any{"remote": "http://127.0.0.1:1"}},
		{"json payload bad template", pipeline.TypedFactory(NewRemoteJSON), map[string]any{"remote": "http://127.0.0.1:1", "payload": "{{ .Nope "}},
		{"zero timeout", pipeline.TypedFactory(NewRemoteJSON), map[string]any{"remote": "http://127.0.0.1:1", "payload": "{}", "timeout": "0s"}},
	}
	for _, tt := range tests {
		b := handlertest.Enable(t, tt.factory, nil, deps)
		if _, err := b.Build(handlertest.JSON(t, tt.cfg)); err == nil {
			t.Errorf("%s: Build must fail", tt.name)
		}
	}
}
