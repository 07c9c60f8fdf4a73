package tunnel_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portcullis-proxy/portcullis/pipeline"
	"github.com/portcullis-proxy/portcullis/proxy"
	"github.com/portcullis-proxy/portcullis/proxy/tunnel"
	"github.com/portcullis-proxy/portcullis/testsupport/handlertest"
)

// streamProxy is the proxy handler, its streams governed by tunnels, behind
// a real http.Server with the given write timeout.
type streamProxy struct {
	srv     *httptest.Server
	tunnels *tunnel.Server
}

func newStreamProxy(t testing.TB, upstream string, websocketBlock string, writeTimeout time.Duration) *streamProxy {
	return newStreamProxyWith(t, upstream, websocketBlock, writeTimeout, nil)
}

// newStreamProxyWith is newStreamProxy with bind, when not nil, setting
// what the session is bound to (expiry, re-validation) before the stream
// is governed.
func newStreamProxyWith(t testing.TB, upstream string, websocketBlock string, writeTimeout time.Duration, bind func(*pipeline.Session)) *streamProxy {
	t.Helper()
	set := ruleSet(t, handlertest.Rule{ID: "streams", URL: "http://<[^/]+>/<.*>", Upstream: upstream, More: []string{"websocket: " + websocketBlock}}.YAML())
	tun := tunnel.New(tunnel.Options{})
	var streams proxy.StreamGovernor = tun
	if bind != nil {
		streams = bindingGovernor{tun, bind}
	}
	h := proxyHandler(set, nil, streams)
	srv := httptest.NewUnstartedServer(h)
	srv.Config.WriteTimeout = writeTimeout
	srv.Config.ReadTimeout = writeTimeout
	srv.Start()
	t.Cleanup(srv.Close)
	return &streamProxy{srv: srv, tunnels: tun}
}

// bindingGovernor has bind change the session of every stream before
// next governs it.
type bindingGovernor struct {
	next proxy.StreamGovernor
	bind func(*pipeline.Session)
}

func (g bindingGovernor) GovernStream(req tunnel.StreamRequest) io.ReadCloser {
	g.bind(req.Session)
	return g.next.GovernStream(req)
}

func (p *streamProxy) get(t testing.TB, path string) *http.Response {
	t.Helper()
	res, err := http.Get(p.srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// readEvents reads an event stream until its clean end and returns its
// events as "type|data" (type "message" when absent), or the read error.
func readEvents(r io.Reader) ([]string, error) {
	var out []string
	err := scanEvents(r, func(e string) { out = append(out, e) })
	return out, err
}

// scanEvents reads an event stream until its end, handing each event to f
// as it completes ("type|data", as readEvents returns them), and returns
// the read error (nil for a clean end).
func scanEvents(r io.Reader, f func(event string)) error {
	sc := bufio.NewScanner(r)
	typ, data := "", ""
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if data != "" {
				if typ == "" {
					typ = "message"
				}
				f(typ + "|" + data)
			}
			typ, data = "", ""
		case strings.HasPrefix(line, "event: "):
			typ = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			data = strings.TrimPrefix(line, "data: ")
		}
	}
	return sc.Err()
}

func TestStreamSSEEndsAtMaxLifetimeWithFinalEvent(t *testing.T) {
	up := tunnel.StreamUpstream(t)
	p := newStreamProxy(t, up.URL, `{max_lifetime: 400ms}`, 0)
	start := time.Now()
	res := p.get(t, "/sse")
	defer res.Body.Close()
	events, err := readEvents(res.Body)
	if err != nil {
		t.Fatalf("the event stream did not end cleanly: %v (events %q)", err, events)
	}
	if d := time.Since(start); d < 400*time.Millisecond {
		t.Errorf("ended after %v, before max_lifetime", d)
	}
	if len(events) < 2 {
		t.Fatalf("events = %q, want ticks then the final event", events)
	}
	last := events[len(events)-1]
	want := `portcullis-close|{"reason":"max_lifetime","message":"max lifetime reached"}`
	if last != want {
		t.Errorf("final event = %q, want %q", last, want)
	}
	for _, e := range events[:len(events)-1] {
		if !strings.HasPrefix(e, "message|tick ") {
			t.Errorf("event %q is not an upstream tick", e)
		}
	}
	eventually(t, "stream unregistered", func() bool { return p.tunnels.Registry().Len() == 0 })
}

func TestStreamSSECloseEventConfigurableOrOff(t *testing.T) {
	up := tunnel.StreamUpstream(t)
	for _, tc := range []struct{ block, want string }{
		{`{max_lifetime: 200ms, stream_close_event: session-over}`, "session-over|"},
		{`{max_lifetime: 200ms, stream_close_event: ""}`, "message|tick"},
	} {
		p := newStreamProxy(t, up.URL, tc.block, 0)
		res := p.get(t, "/sse")
		events, err := readEvents(res.Body)
		res.Body.Close()
		if err != nil || len(events) == 0 {
			t.Fatalf("%s: events %q, err %v", tc.block, events, err)
		}
		if last := events[len(events)-1]; !strings.HasPrefix(last, tc.want) {
			t.Errorf("%s: last event %q, want prefix %q", tc.block, last, tc.want)
		}
	}
}

func TestStreamSSEAdminRevocation(t *testing.T) {
	up := tunnel.StreamUpstream(t)
	p := newStreamProxy(t, up.URL, `{max_lifetime: 1h}`, 0)
	res := p.get(t, "/sse")
	defer res.Body.Close()
	eventually(t, "stream registered", func() bool { return p.tunnels.Registry().Len() == 1 })
	infos := p.tunnels.Registry().Describe(tunnel.Selector{})
	if infos[0].Kind != "sse" || infos[0].Rule != "streams" || infos[0].NextDeadlineReason == "" {
		t.Errorf("listed as %+v", infos[0])
	}
	done := make(chan []string)
	go func() {
		ev, _ := readEvents(res.Body)
		done <- ev
	}()
	time.Sleep(150 * time.Millisecond)
	if n := p.tunnels.Registry().Revoke(tunnel.Selector{Rule: "streams"}, "revoked by admin"); n != 1 {
		t.Fatalf("revoked %d channels, want 1", n)
	}
	select {
	case events := <-done:
		last := events[len(events)-1]
		if want := `portcullis-close|{"reason":"session_revoked","message":"revoked by admin"}`; last != want {
			t.Errorf("final event = %q, want %q", last, want)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the revoked stream did not end")
	}
}

func TestStreamSSESessionExpiryAndRejectedRecheck(t *testing.T) {
	up := tunnel.StreamUpstream(t)
	// Expiry: the session ends 300 ms in.
	p := newStreamProxyWith(t, up.URL, `{max_lifetime: 1h}`, 0, func(s *pipeline.Session) {
		s.ExpiresAt = time.Now().Add(300 * time.Millisecond)
	})
	res := p.get(t, "/sse")
	events, err := readEvents(res.Body)
	res.Body.Close()
	if err != nil || len(events) == 0 {
		t.Fatalf("events %q, err %v", events, err)
	}
	if last := events[len(events)-1]; last != `portcullis-close|{"reason":"session_expired","message":"session expired"}` {
		t.Errorf("at expiry, final event %q", last)
	}

	// Re-check: an identity endpoint over loopback starts rejecting the
	// session; the stream's re-check (grouped with its session) ends it.
	var reject atomic.Bool
	idp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if reject.Load() {
			http.Error(w, "no session", http.StatusUnauthorized)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer idp.Close()
	p = newStreamProxyWith(t, up.URL, `{max_lifetime: 1h, revalidate_every: 200ms}`, 0, func(s *pipeline.Session) {
		s.SessionID, s.Authenticator = "session-1", "cookie_session"
		s.Revalidator = pipeline.RevalidatorFunc(func(ctx context.Context) (pipeline.Identity, error) {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, idp.URL, nil)
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				return pipeline.Identity{}, pipeline.Unavailable("identity provider unreachable", err)
			}
			res.Body.Close()
			if res.StatusCode == http.StatusUnauthorized {
				return pipeline.Identity{}, pipeline.Unauthorized("session is no longer valid", nil)
			}
			return pipeline.Identity{Subject: s.Subject}, nil
		})
	})
	res = p.get(t, "/sse")
	defer res.Body.Close()
	done := make(chan []string)
	go func() {
		ev, _ := readEvents(res.Body)
		done <- ev
	}()
	time.Sleep(500 * time.Millisecond) // re-checks pass meanwhile
	reject.Store(true)
	select {
	case events := <-done:
		if last := events[len(events)-1]; last != `portcullis-close|{"reason":"session_revoked","message":"session revoked"}` {
			t.Errorf("after a rejected re-check, final event %q", last)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the stream outlived its rejected session")
	}
}

func TestStreamNDJSONAbortedNotCompleted(t *testing.T) {
	up := tunnel.StreamUpstream(t)
	p := newStreamProxy(t, up.URL, `{max_lifetime: 300ms}`, 0)
	res := p.get(t, "/ndjson")
	defer res.Body.Close()
	if res.ContentLength != -1 {
		t.Fatalf("content length %d, want a chunked stream", res.ContentLength)
	}
	body, err := io.ReadAll(res.Body)
	if err == nil {
		t.Fatalf("the ndjson stream ended as a complete body (%d bytes): it must be aborted", len(body))
	}
	if !errors.Is(err, io.ErrUnexpectedEOF) && !strings.Contains(err.Error(), "unexpected EOF") {
		t.Logf("read error: %v", err)
	}
	if !strings.HasPrefix(string(body), `{"tick":0}`) {
		t.Errorf("body %q: the stream did not flow before it was cut", body)
	}
}

// TestStreamOutlivesWriteTimeout: an 8 s event stream under a 2 s server
// write (and read) timeout runs to its policy's max lifetime. The pair is
// shorter than 30 s vs 5 s to spare the suite's time, in the same
// proportion of well over the timeout.
func TestStreamOutlivesWriteTimeout(t *testing.T) {
	if testing.Short() {
		t.Skip("8 s")
	}
	up := tunnel.StreamUpstream(t)
	p := newStreamProxy(t, up.URL, `{max_lifetime: 8s}`, 2*time.Second)
	start := time.Now()
	res := p.get(t, "/sse")
	defer res.Body.Close()
	events, err := readEvents(res.Body)
	if err != nil {
		t.Fatalf("cut after %v: %v", time.Since(start), err)
	}
	if d := time.Since(start); d < 8*time.Second {
		t.Errorf("ended after %v, before max_lifetime", d)
	}
	if last := events[len(events)-1]; !strings.HasPrefix(last, `portcullis-close|{"reason":"max_lifetime"`) {
		t.Errorf("final event %q", last)
	}
	if len(events) < 100 {
		t.Errorf("%d ticks in 8 s, want about 160", len(events))
	}
}

func TestStreamKnownLengthDownloadUnaffected(t *testing.T) {
	up := tunnel.StreamUpstream(t)
	// A max lifetime far shorter than the download: a body of known
	// length is not a stream, so nothing cuts it.
	p := newStreamProxy(t, up.URL, `{max_lifetime: 1ms, idle_timeout: 1ms}`, 0)
	const n = 64 << 20
	res := p.get(t, "/blob?n="+strconv.Itoa(n))
	defer res.Body.Close()
	if p.tunnels.Registry().Len() != 0 {
		t.Error("a known-length body was registered as a stream")
	}
	got, err := io.Copy(io.Discard, res.Body)
	if err != nil || got != n || res.ContentLength != n {
		t.Fatalf("download: %d of %d bytes (content length %d), err %v", got, n, res.ContentLength, err)
	}
}

func TestStreamsLeaveNoGoroutineOrConnection(t *testing.T) {
	up := tunnel.StreamUpstream(t)
	p := newStreamProxy(t, up.URL, `{max_lifetime: 30ms}`, 0)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	run := func(n int) {
		errs := make(chan error, n)
		tunnel.EachAtMost(n, 32, func(i int) {
			path := "/sse"
			if i%2 == 1 {
				path = "/ndjson"
			}
			res, err := client.Get(p.srv.URL + path)
			if err != nil {
				// An ndjson stream whose 30 ms lifetime passes before its
				// head is written (a loaded machine) is aborted: the
				// client sees the connection end, which is the promise.
				if path == "/ndjson" && errors.Is(err, io.EOF) {
					return
				}
				errs <- err
				return
			}
			_, _ = io.Copy(io.Discard, res.Body)
			res.Body.Close()
		})
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
	}
	run(50) // warm the pools
	client.CloseIdleConnections()
	eventually(t, "streams unregistered", func() bool { return p.tunnels.Registry().Len() == 0 })
	time.Sleep(200 * time.Millisecond)
	before := runtime.NumGoroutine()
	fdsBefore := tunnel.OpenFDs(t)
	run(1000)
	client.CloseIdleConnections()
	eventually(t, "1,000 streams unregistered", func() bool { return p.tunnels.Registry().Len() == 0 })
	var after, fdsAfter int
	deadline := time.Now().Add(15 * time.Second)
	for {
		after, fdsAfter = runtime.NumGoroutine(), tunnel.OpenFDs(t)
		if (after <= before+5 && fdsAfter <= fdsBefore+5) || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if after > before+5 {
		t.Errorf("goroutines: %d before, %d after 1,000 streams", before, after)
	}
	if fdsAfter > fdsBefore+5 {
		t.Errorf("open files: %d before, %d after 1,000 streams", fdsBefore, fdsAfter)
	}
}

// eventually waits up to 15 s (generous: a loaded 2-core machine) for cond.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	handlertest.WaitFor(t, what, 15*time.Second, cond)
}

// Streams reaching one session expiry end in one tick of the wheel, each
// with its final event.
func TestStreamSSEBurstAtOneExpiry(t *testing.T) {
	up := tunnel.StreamUpstream(t)
	const n = 30
	expiry := time.Now().Add(time.Second)
	p := newStreamProxyWith(t, up.URL, `{max_lifetime: 1h}`, 0, func(s *pipeline.Session) { s.ExpiresAt = expiry })
	type result struct {
		events []string
		err    error
	}
	done := make(chan result, n)
	for range n {
		res := p.get(t, "/sse")
		go func() {
			defer res.Body.Close()
			ev, err := readEvents(res.Body)
			done <- result{ev, err}
		}()
	}
	want := `portcullis-close|{"reason":"session_expired","message":"session expired"}`
	for i := range n {
		select {
		case r := <-done:
			if r.err != nil || len(r.events) == 0 || r.events[len(r.events)-1] != want {
				t.Errorf("stream %d: events %q, err %v; want the final event %q", i, r.events, r.err, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%d of %d streams did not end", n-i, n)
		}
	}
	if time.Now().Before(expiry) {
		t.Error("the streams ended before the session expired")
	}
	eventually(t, "streams unregistered", func() bool { return p.tunnels.Registry().Len() == 0 })
}
