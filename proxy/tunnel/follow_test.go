package tunnel_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portcullis-proxy/portcullis/pipeline"
	"github.com/portcullis-proxy/portcullis/proxy/tunnel"
)

// sseRule is a rule serving the event stream of the upstream's /sse at
// /<id>/sse, with the given authorizer and websocket block.
func sseRule(id, upstream, authorizer, websocket string) string {
	return "- id: " + id + "\n  match: {url: \"http://<[^/]+>/" + id + "/sse\", methods: [GET]}\n" +
		"  authenticators: [{handler: anonymous}]\n  authorizer: " + authorizer + "\n  mutators: [{handler: noop}]\n" +
		"  upstream: {url: \"" + upstream + "\", strip_path: /" + id + "}\n  websocket: " + websocket + "\n"
}

// eventStream is an event stream read on a goroutine of its own.
type eventStream struct {
	events chan string // "type|data", closed at the end of the response
	end    chan error  // the read's end: nil for a clean one
}

// openEventStream opens the event stream at url: it is governed once this
// returns (the proxy hands it over before the answer's header goes out).
func openEventStream(t *testing.T, url string) eventStream {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { res.Body.Close() })
	if res.StatusCode != http.StatusOK {
		t.Fatalf("%s: %s", url, res.Status)
	}
	s := eventStream{events: make(chan string, 4096), end: make(chan error, 1)}
	go func() {
		err := scanEvents(res.Body, func(e string) { s.events <- e })
		close(s.events)
		s.end <- err
	}()
	return s
}

// next returns the next event, failing when none comes within 5s.
func (s eventStream) next(t *testing.T) string {
	t.Helper()
	select {
	case e, ok := <-s.events:
		if !ok {
			t.Fatal("the event stream ended")
		}
		return e
	case <-time.After(5 * time.Second):
		t.Fatal("no event for 5s")
	}
	return ""
}

// final waits (up to d) for the stream's clean end and returns its last
// event.
func (s eventStream) final(t *testing.T, d time.Duration) string {
	t.Helper()
	last := ""
	timeout := time.After(d)
	for {
		select {
		case e, ok := <-s.events:
			if !ok {
				if err := <-s.end; err != nil {
					t.Fatalf("the event stream was cut: %v", err)
				}
				return last
			}
			last = e
		case <-timeout:
			t.Fatalf("the event stream did not end within %v", d)
		}
	}
}

// closeEvent is the final event a stream ended for reason gets.
func closeEvent(reason, message string) string {
	return `portcullis-close|{"reason":"` + reason + `","message":"` + message + `"}`
}

// TestFollowRulesStreams: three event streams are open when a new rule set
// replaces theirs. The stream whose rule is gone ends with the final event
// "rule_changed" at once; the one whose rule got a shorter max_lifetime
// ends at it, counted from its start; the one whose rule is unchanged
// keeps streaming.
func TestFollowRulesStreams(t *testing.T) {
	up := tunnel.StreamUpstream(t)
	allow := "{handler: allow}"
	set := ruleSet(t, sseRule("gone", up.URL, allow, "{}")+sseRule("limits", up.URL, allow, "{max_lifetime: 1h}")+sseRule("same", up.URL, allow, "{}"))
	tun := tunnel.New(tunnel.Options{})
	srv := httptest.NewServer(proxyHandler(set, nil, tun))
	t.Cleanup(srv.Close)
	opened := time.Now()
	gone, limits, same := openEventStream(t, srv.URL+"/gone/sse"), openEventStream(t, srv.URL+"/limits/sse"), openEventStream(t, srv.URL+"/same/sse")

	tun.FollowRules(ruleSet(t, sseRule("same", up.URL, allow, "{}")+sseRule("limits", up.URL, allow, "{max_lifetime: 1500ms}")))
	if got := gone.final(t, 5*time.Second); got != closeEvent("rule_changed", "rule changed") {
		t.Errorf("stream of the removed rule ended with %q, want the rule_changed event", got)
	}
	limits.next(t)
	if time.Since(opened) >= 1500*time.Millisecond {
		t.Fatal("too slow to tell the new max lifetime from the old")
	}
	got := limits.final(t, 5*time.Second)
	if lived := time.Since(opened); got != closeEvent("max_lifetime", "max lifetime reached") || lived < 1500*time.Millisecond {
		t.Errorf("stream of the changed rule ended with %q after %v, want the max_lifetime event at 1.5s", got, lived)
	}
	same.next(t)
	if n := tun.Registry().Len(); n != 1 {
		t.Errorf("%d channels registered, want the unchanged rule's stream alone", n)
	}
}

// TestFollowRulesCatchesUpLateChannels: a stream admitted by the rule set
// a reload is replacing (the proxy still serves it) registers after
// FollowRules was given the new set: it is re-evaluated as it registers,
// and ends at once when its rule is gone.
func TestFollowRulesCatchesUpLateChannels(t *testing.T) {
	up := tunnel.StreamUpstream(t)
	allow := "{handler: allow}"
	old := ruleSet(t, sseRule("gone", up.URL, allow, "{}")+sseRule("same", up.URL, allow, "{}"))
	tun := tunnel.New(tunnel.Options{})
	srv := httptest.NewServer(proxyHandler(old, nil, tun))
	t.Cleanup(srv.Close)
	tun.FollowRules(ruleSet(t, sseRule("same", up.URL, allow, "{}")))

	gone := openEventStream(t, srv.URL+"/gone/sse")
	if got := gone.final(t, 5*time.Second); got != closeEvent("rule_changed", "rule changed") {
		t.Errorf("stream of the removed rule, opened late, ended with %q, want the rule_changed event", got)
	}
	same := openEventStream(t, srv.URL+"/same/sse")
	same.next(t)
	same.next(t)
}

// decisionAPI is a real decision endpoint on loopback answering with the
// status set last; it counts its calls and records the payloads.
type decisionAPI struct {
	*httptest.Server
	status   atomic.Int32
	mu       sync.Mutex
	payloads []string
}

func newDecisionAPI(t *testing.T, status int) *decisionAPI {
	d := &decisionAPI{}
	d.status.Store(int32(status))
	d.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var b strings.Builder
		buf := make([]byte, 512)
		for {
			n, err := r.Body.Read(buf)
			b.Write(buf[:n])
			if err != nil {
				break
			}
		}
		d.mu.Lock()
		d.payloads = append(d.payloads, b.String())
		d.mu.Unlock()
		w.WriteHeader(int(d.status.Load()))
	}))
	t.Cleanup(d.Close)
	return d
}

func (d *decisionAPI) calls() ([]string, int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.payloads...), len(d.payloads)
}

func remoteJSON(url string) string {
	return `{handler: remote_json, config: {remote: "` + url + `", payload: "{\"subject\": \"{{ print .Subject }}\"}"}}`
}

// TestFollowRulesRechecksChangedAuthorizerOnce: three event streams of one
// session under one rule, re-checked hourly. A new rule set points the
// rule's authorizer at another decision API, which denies: the streams end
// with "access_revoked" at once, after one re-validation of the session
// and one call to the new API, not one per stream.
func TestFollowRulesRechecksChangedAuthorizerOnce(t *testing.T) {
	up := tunnel.StreamUpstream(t)
	before, after := newDecisionAPI(t, http.StatusOK), newDecisionAPI(t, http.StatusForbidden)
	block := "{revalidate_every: 1h}"
	tun := tunnel.New(tunnel.Options{})
	var revalidations atomic.Int32
	bind := func(s *pipeline.Session) {
		s.SessionID, s.Authenticator = "session-1", "cookie_session"
		s.Revalidator = pipeline.RevalidatorFunc(func(context.Context) (pipeline.Identity, error) {
			revalidations.Add(1)
			return pipeline.Identity{Subject: "alice"}, nil
		})
	}
	srv := httptest.NewServer(proxyHandler(ruleSet(t, sseRule("feed", up.URL, remoteJSON(before.URL), block)), nil, bindingGovernor{tun, bind}))
	t.Cleanup(srv.Close)
	var streams []eventStream
	for i := 0; i < 3; i++ {
		streams = append(streams, openEventStream(t, srv.URL+"/feed/sse"))
	}

	tun.FollowRules(ruleSet(t, sseRule("feed", up.URL, remoteJSON(after.URL), block)))
	for i, s := range streams {
		if got := s.final(t, 5*time.Second); got != closeEvent("access_revoked", "access revoked") {
			t.Errorf("stream %d ended with %q, want the access_revoked event", i, got)
		}
	}
	payloads, n := after.calls()
	if n != 1 || revalidations.Load() != 1 {
		t.Errorf("the new decision API was asked %d times, the session re-validated %d times; want once each", n, revalidations.Load())
	}
	if n > 0 && payloads[0] != `{"subject": "alice"}` {
		t.Errorf("payload %s, want the re-validated subject", payloads[0])
	}
}

// TestReauthorizeWithoutRevalidator: an anonymous stream (an authenticator
// with nothing to re-validate) under a remote_json rule is re-authorized at
// every re-check with the identity that admitted it, and ends with
// "access_revoked" when the decision API turns to deny.
func TestReauthorizeWithoutRevalidator(t *testing.T) {
	up := tunnel.StreamUpstream(t)
	pdp := newDecisionAPI(t, http.StatusOK)
	p := httptest.NewServer(proxyHandler(ruleSet(t, sseRule("feed", up.URL, remoteJSON(pdp.URL), "{revalidate_every: 100ms}")), nil, tunnel.New(tunnel.Options{})))
	t.Cleanup(p.Close)
	s := openEventStream(t, p.URL+"/feed/sse")
	eventually(t, "two re-authorizations", func() bool { _, n := pdp.calls(); return n >= 3 })
	pdp.status.Store(http.StatusForbidden)
	if got := s.final(t, 5*time.Second); got != closeEvent("access_revoked", "access revoked") {
		t.Errorf("stream ended with %q, want the access_revoked event", got)
	}
	payloads, _ := pdp.calls()
	for _, b := range payloads {
		if b != `{"subject": "anonymous"}` {
			t.Errorf("payload %s, want the admitting anonymous subject", b)
		}
	}
}
