package mutators

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/portcullis-proxy/portcullis/pipeline"
	"github.com/portcullis-proxy/portcullis/testsupport/handlertest"

	"github.com/portcullis-proxy/portcullis/testsupport/faultinject"
)

// directoryAPI is a real hydration endpoint: it looks the subject up in a
// small directory and adds the groups to extra and a header, as a user
// directory service would.
type directoryAPI struct {
	*httptest.Server
	calls    atomic.Int32
	mu       sync.Mutex
	lastAuth string
	lastHdr  http.Header
	status   int
	subject  string // when set, answers for this subject instead
}

func newDirectoryAPI(t *testing.T) *directoryAPI {
	d := &directoryAPI{status: http.StatusOK}
	groups := map[string][]string{"alice": {"admins", "chat"}, "bob": {"chat"}}
	d.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d.calls.Add(1)
		d.mu.Lock()
		d.lastAuth = r.Header.Get("Authorization")
		d.lastHdr = r.Header.Clone()
		status, override := d.status, d.subject
		d.mu.Unlock()
		if status != http.StatusOK {
			w.WriteHeader(status)
			return
		}
		var sess map[string]any
		body, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(body, &sess); err != nil {
			http.Error(w, "bad session", http.StatusBadRequest)
			return
		}
		sub, _ := sess["subject"].(string)
		extra, _ := sess["extra"].(map[string]any)
		if extra == nil {
			extra = map[string]any{}
		}
		extra["groups"] = groups[sub]
		if mc, ok := sess["match_context"].(map[string]any); ok {
			extra["seen_groups"] = mc["regexp_capture_groups"]
		}
		if override != "" {
			sub = override
		}
		json.NewEncoder(w).Encode(map[string]any{
			"subject": sub,
			"extra":   extra,
			"header":  map[string][]string{"X-Groups": {strings.Join(groups[sub], ",")}},
		})
	}))
	t.Cleanup(d.Close)
	return d
}

func buildMutator(t *testing.T, f pipeline.Factory[pipeline.Mutator], cfg map[string]any) pipeline.Mutator {
	t.Helper()
	b := handlertest.Enable(t, f, nil, handlertest.Deps(t))
	m := handlertest.Build(t, b, handlertest.JSON(t, cfg))
	return m
}

func TestHydratorMergesAnswer(t *testing.T) {
	api := newDirectoryAPI(t)
	m := buildMutator(t, pipeline.TypedFactory(NewHydrator), map[string]any{"api": map[string]any{
		"url":             api.URL + "/hydrate",
		"auth":            map[string]any{"basic": map[string]any{"username": "gw", "password": "pw"}},
		"forward_headers": []string{"X-Request-Id"},
	}})
	r, s := newSession(t, "alice", "http://gw.test/ws/lobby", "lobby")
	r.Header.Set("X-Request-Id", "req-1")
	r.Header.Set("Cookie", "ory_kratos_session=secret")
	s.Header.Set("X-Earlier", "kept")
	if err := m.Mutate(r, s); err != nil {
		t.Fatal(err)
	}
	groups, _ := s.Extra["groups"].([]any)
	if len(groups) != 2 || groups[0] != "admins" {
		t.Errorf("extra.groups = %v", s.Extra["groups"])
	}
	if s.Extra["identity"] == nil {
		t.Error("the extra the API echoed back must be kept")
	}
	if got := s.Header.Get("X-Groups"); got != "admins,chat" {
		t.Errorf("X-Groups = %q", got)
	}
	if s.Header.Get("X-Earlier") != "kept" {
		t.Error("headers set by earlier mutators must survive")
	}
	api.mu.Lock()
	defer api.mu.Unlock()
	if user, pass, ok := (&http.Request{Header: http.Header{"Authorization": {api.lastAuth}}}).BasicAuth(); !ok || user != "gw" || pass != "pw" {
		t.Errorf("API got Authorization %q, want basic credentials gw:pw", api.lastAuth)
	}
	if ct, accept := api.lastHdr.Get("Content-Type"), api.lastHdr.Get("Accept"); ct != "application/json" || accept != "application/json" {
		t.Errorf("API got Content-Type %q, Accept %q; want application/json", ct, accept)
	}
	if api.lastHdr.Get("X-Request-Id") != "req-1" {
		t.Error("a configured forward header was not sent")
	}
	if api.lastHdr.Get("Cookie") != "" {
		t.Error("an unlisted client header (the session cookie) was sent to the API")
	}
}

func TestHydratorCache(t *testing.T) {
	api := newDirectoryAPI(t)
	m := buildMutator(t, pipeline.TypedFactory(NewHydrator), map[string]any{
		"api":   map[string]any{"url": api.URL},
		"cache": map[string]any{"enabled": true, "ttl": "1h"},
	})
	run := func(sub, room string) *pipeline.Session {
		r, s := newSession(t, sub, "http://gw.test/ws/"+room, room)
		r.Header.Set("X-Trace", room+sub) // client headers vary; not part of the key
		if err := m.Mutate(r, s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	first := run("alice", "a")
	second := run("alice", "a")
	if n := api.calls.Load(); n != 1 {
		t.Errorf("API called %d times for two identical sessions, want 1", n)
	}
	// A cached answer is decoded afresh: requests never share maps.
	first.Extra["groups"] = "tampered"
	if third := run("alice", "a"); third.Extra["groups"] == "tampered" || second.Extra["groups"] == "tampered" {
		t.Error("cached answers must not be shared between requests")
	}
	run("bob", "a")
	run("alice", "b")
	if n := api.calls.Load(); n != 3 {
		t.Errorf("API called %d times, want 3 (new subject, new capture group)", n)
	}
}

func TestHydratorFailsClosed(t *testing.T) {
	closed := faultinject.RefusingURL(t)

	// Fault injector: accepts and never answers.
	hang := faultinject.Hanging(t)

	api := newDirectoryAPI(t)
	tests := []struct {
		name    string
		url     string
		status  int
		subject string
		want    int
	}{
		{"closed port", closed, 0, "", 503},
		{"never answers", "http://" + hang, 0, "", 503},
		{"5xx", api.URL, http.StatusInternalServerError, "", 503},
		{"refuses credentials", api.URL, http.StatusUnauthorized, "", 500},
		{"not found", api.URL, http.StatusNotFound, "", 500},
		{"other subject", api.URL, http.StatusOK, "mallory", 500},
	}
	for _, tt := range tests {
		api.mu.Lock()
		api.status, api.subject = tt.status, tt.subject
		api.mu.Unlock()
		m := buildMutator(t, pipeline.TypedFactory(NewHydrator), map[string]any{"api": map[string]any{"url": tt.url, "timeout": "100ms"}})
		r, s := newSession(t, "alice", "http://gw.test/")
		err := m.Mutate(r, s)
		if got := pipeline.StatusOf(err); err == nil || got != tt.want {
			t.Errorf("%s: Mutate = %v (%d), want %d", tt.name, err, got, tt.want)
		}
		if s.Extra["groups"] != nil {
			t.Errorf("%s: a failed hydration must not change the session", tt.name)
		}
	}
	var pe *pipeline.Error
	api.mu.Lock()
	api.status = http.StatusServiceUnavailable
	api.mu.Unlock()
	m := buildMutator(t, pipeline.TypedFactory(NewHydrator), map[string]any{"api": map[string]any{"url": api.URL, "retry": map[string]any{"max_delay": "1ms", "give_up_after": "20ms"}}})
	r, s := newSession(t, "alice", "http://gw.test/")
	if err := m.Mutate(r, s); !errors.As(err, &pe) || pe.Status != 503 {
		t.Errorf("retries exhausted: %v, want 503", err)
	}
}

func TestHydratorConfigErrors(t *testing.T) {
	b, _ := pipeline.TypedFactory(NewHydrator)(nil, handlertest.Deps(t))
	for name, cfg := range map[string]map[string]any{
		"no url":        {"api": map[string]any{}},
		"bad url":       {"api": map[string]any{"url": "file:///x"}},
		"unknown key":   {"api": map[string]any{"url": "http://127.0.0.1:1", "retries": 3}},
		"bad cache ttl": {"api": map[string]any{"url": "http://127.0.0.1:1"}, "cache": map[string]any{"enabled": true, "ttl": "0s"}},
	} {
		if _, err := b.Build(handlertest.JSON(t, cfg)); err == nil {
			t.Errorf("%s: Build must fail", name)
		}
	}
}

// TestHydratorCacheKeyedByForwardedHeaders: the answer depends on the
// forwarded client headers the call carries, so tenant B never gets tenant
// A's cached X-Tenant.
func TestHydratorCacheKeyedByForwardedHeaders(t *testing.T) {
	var calls atomic.Int32
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		var sess map[string]any
		json.NewDecoder(r.Body).Decode(&sess)
		json.NewEncoder(w).Encode(map[string]any{
			"subject": sess["subject"],
			"header":  map[string][]string{"X-Tenant": {"tenant-" + r.Header.Get("X-Tenant-Id")}},
		})
	}))
	t.Cleanup(api.Close)
	m := buildMutator(t, pipeline.TypedFactory(NewHydrator), map[string]any{
		"api":   map[string]any{"url": api.URL, "forward_headers": []string{"X-Tenant-Id"}},
		"cache": map[string]any{"enabled": true, "ttl": "1h"},
	})
	run := func(m pipeline.Mutator, tenant string) string {
		r, s := newSession(t, "alice", "http://gw.test/ws/a", "a")
		r.Header.Set("X-Tenant-Id", tenant)
		if err := m.Mutate(r, s); err != nil {
			t.Fatal(err)
		}
		return s.Header.Get("X-Tenant")
	}
	for _, tenant := range []string{"A", "B", "A", "B"} {
		if got := run(m, tenant); got != "tenant-"+tenant {
			t.Errorf("tenant %s got X-Tenant %q", tenant, got)
		}
	}
	if n := calls.Load(); n != 2 {
		t.Errorf("API called %d times, want 2 (one per tenant, then cached)", n)
	}
}
