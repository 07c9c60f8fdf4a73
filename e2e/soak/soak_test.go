//go:build unix

package soak

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portcullis-proxy/portcullis/testsupport/handlertest"
	"github.com/portcullis-proxy/portcullis/testsupport/servertest"
)

// soakSize is one run's load.
type soakSize struct {
	tunnels     int           // concurrent tunnels
	duration    time.Duration // of steady load, after all tunnels are open
	msgInterval time.Duration // mean pause between a tunnel's bursts
	httpRate    int           // HTTP requests per second, half to the proxy, half to the decision API
	readWait    time.Duration // longest wait for an echo
}

// sizes: the small one runs in every `go test ./...`; PORTCULLIS_SOAK=full
// (make soak) runs the full one. PORTCULLIS_SOAK_TUNNELS and
// PORTCULLIS_SOAK_DURATION override either.
func size(t *testing.T) soakSize {
	s := soakSize{tunnels: 200, duration: 5 * time.Second, msgInterval: 250 * time.Millisecond, httpRate: 100, readWait: 20 * time.Second}
	if os.Getenv("PORTCULLIS_SOAK") == "full" {
		s = soakSize{tunnels: 5000, duration: time.Minute, msgInterval: 2 * time.Second, httpRate: 400, readWait: 60 * time.Second}
	}
	if v := os.Getenv("PORTCULLIS_SOAK_TUNNELS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			t.Fatal(err)
		}
		s.tunnels = n
	}
	if v := os.Getenv("PORTCULLIS_SOAK_DURATION"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatal(err)
		}
		s.duration = d
	}
	return s
}

const soakConfig = `
log: {level: warn}
authenticators: {anonymous: {enabled: true}}
authorizers: {allow: {enabled: true}, deny: {enabled: true}}
mutators: {header: {enabled: true, config: {headers: {X-User: "{{ print .Subject }}"}}}, noop: {enabled: true}}
`

// soakRules are the rules the load runs against; variant B adds a rule
// and reorders the others, which changes no answer the load checks.
func soakRules(httpUp, wsUp string, variantB bool) string {
	ws := route("ws", wsUp, "allow", "header")
	ws.More = []string{"websocket: {max_lifetime: 1h, idle_timeout: 10m, close_grace: 2s}"}
	api := route("api", httpUp, "allow", "header")
	api.Methods = []string{"GET", "POST"}
	private := route("private", httpUp, "deny", "noop")
	if !variantB {
		return handlertest.Rules(ws, api, private)
	}
	return handlertest.Rules(private, route("v2", httpUp, "allow", "header"), api, ws)
}

// route is the rule id for GET /id/... to upstream: anonymous, decided by
// authorizer (allow or deny), then mutator.
func route(id, upstream, authorizer, mutator string) handlertest.Rule {
	return handlertest.Rule{ID: id, URL: "http://<[^/]+>/" + id + "/<.*>", Authorizer: authorizer, Mutators: []string{mutator}, Upstream: upstream}
}

// counters are the load's figures.
type counters struct {
	tunnelsOpened, tunnelFailures  atomic.Int64
	messagesSent, messagesEchoed   atomic.Int64
	messageErrors                  atomic.Int64
	httpRequests, decisionRequests atomic.Int64
	wrongAnswers                   atomic.Int64
	mu                             sync.Mutex
	latencies                      []time.Duration
	firstErrors                    []string
}

func (c *counters) fail(format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.firstErrors) < 10 {
		c.firstErrors = append(c.firstErrors, fmt.Sprintf(format, args...))
	}
}

func (c *counters) latency(d time.Duration) {
	c.mu.Lock()
	c.latencies = append(c.latencies, d)
	c.mu.Unlock()
}

// TestSoak runs concurrent tunnels carrying ordered traffic plus steady
// HTTP load through the proxy and the decision API of the real binary,
// reloads the rules twice in the middle, then closes everything. It fails
// on any wrong answer, lost or reordered message, tunnel that did not
// survive, or goroutine or open file of the proxy (or of the test) not
// given back; it reports the figures.
func TestSoak(t *testing.T) {
	sz := size(t)
	limit := raiseFileLimit(t, uint64(sz.tunnels)*2+2000)
	if need := uint64(sz.tunnels)*2 + 500; limit < need {
		t.Fatalf("open files limit %d is below the %d %d tunnels need", limit, need, sz.tunnels)
	}
	httpUp, wsUp := newHTTPUpstream(t), newWSUpstream(t)
	p := startProxy(t, soakConfig, soakRules(httpUp.URL, wsUp.url, false), 20*time.Second)
	testBaseline := runtime.NumGoroutine()
	base := metrics(t, p, "go_goroutines", "process_open_fds")
	t.Logf("proxy at rest: %.0f goroutines, %.0f open files", base["go_goroutines"], base["process_open_fds"])

	var c counters
	stop := make(chan struct{})
	var load sync.WaitGroup

	// Tunnels: opened with bounded concurrency, then each sends bursts of
	// numbered messages and checks every echo comes back, in order.
	start := time.Now()
	clients := make([]*wsClient, sz.tunnels)
	var opening sync.WaitGroup
	sem := make(chan struct{}, 64)
	for i := range clients {
		opening.Add(1)
		sem <- struct{}{}
		go func() {
			defer opening.Done()
			defer func() { <-sem }()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			cl, err := dialWS(ctx, fmt.Sprintf("%s/ws/%d", p.WSURL(), i))
			if err != nil {
				c.tunnelFailures.Add(1)
				c.fail("tunnel %d: %v", i, err)
				return
			}
			c.tunnelsOpened.Add(1)
			clients[i] = cl
		}()
	}
	opening.Wait()
	openTime := time.Since(start)
	peakOpen := metrics(t, p, "portcullis_websocket_tunnels_active", "go_goroutines", "process_open_fds", "process_resident_memory_bytes")
	t.Logf("%d tunnels open in %v; proxy: %.0f active, %.0f goroutines, %.0f open files, %.1f MiB resident",
		c.tunnelsOpened.Load(), openTime.Round(time.Millisecond), peakOpen["portcullis_websocket_tunnels_active"],
		peakOpen["go_goroutines"], peakOpen["process_open_fds"], peakOpen["process_resident_memory_bytes"]/(1<<20))
	if c.tunnelFailures.Load() > 0 {
		t.Errorf("%d tunnels failed to open", c.tunnelFailures.Load())
	}

	for i, cl := range clients {
		if cl == nil {
			continue
		}
		load.Add(1)
		go func() {
			defer load.Done()
			tunnelLoad(i, cl, sz, stop, &c)
		}()
	}

	// Steady HTTP load at a fixed rate: proxy (allowed and denied) and
	// the decision API.
	for w := 0; w < 8; w++ {
		load.Add(1)
		go func() {
			defer load.Done()
			httpLoad(p, sz.httpRate/8, stop, &c)
		}()
	}

	// Two rule reloads in the middle; each is seen to take effect.
	reloadsBefore := metrics(t, p, "portcullis_rules_reloads_total")["portcullis_rules_reloads_total"]
	time.Sleep(sz.duration / 3)
	reload(t, p, soakRules(httpUp.URL, wsUp.url, true), 200)
	time.Sleep(sz.duration / 3)
	reload(t, p, soakRules(httpUp.URL, wsUp.url, false), 404)
	time.Sleep(sz.duration - 2*(sz.duration/3))
	close(stop)
	load.Wait()
	elapsed := time.Since(start) - openTime
	reloads := metrics(t, p, "portcullis_rules_reloads_total")["portcullis_rules_reloads_total"] - reloadsBefore

	during := metrics(t, p, "portcullis_websocket_tunnels_active")
	if got := during["portcullis_websocket_tunnels_active"]; got != float64(c.tunnelsOpened.Load()) {
		t.Errorf("%.0f tunnels open at the end of the load, want all %d (none may drop, reloads included)", got, c.tunnelsOpened.Load())
	}

	// Close every tunnel from the client side, then let the upstream close
	// its idle HTTP connections.
	var closing sync.WaitGroup
	var closeErrors atomic.Int64
	for _, cl := range clients {
		if cl == nil {
			continue
		}
		closing.Add(1)
		sem <- struct{}{}
		go func() {
			defer closing.Done()
			defer func() { <-sem }()
			if err := cl.close(sz.readWait); err != nil {
				closeErrors.Add(1)
				c.fail("close: %v", err)
			}
		}()
	}
	closing.Wait()
	http.DefaultClient.CloseIdleConnections()
	httpUp.CloseClientConnections()

	// Back to rest.
	var after map[string]float64
	deadline := time.Now().Add(30 * time.Second)
	for {
		after = metrics(t, p, "portcullis_websocket_tunnels_active", "go_goroutines", "process_open_fds")
		if after["portcullis_websocket_tunnels_active"] == 0 && after["go_goroutines"] <= base["go_goroutines"] &&
			after["process_open_fds"] <= base["process_open_fds"] && runtime.NumGoroutine() <= testBaseline {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("not back to rest: proxy %.0f tunnels, %.0f goroutines (%.0f before), %.0f open files (%.0f before); test %d goroutines (%d before)",
				after["portcullis_websocket_tunnels_active"], after["go_goroutines"], base["go_goroutines"],
				after["process_open_fds"], base["process_open_fds"], runtime.NumGoroutine(), testBaseline)
			break
		}
		time.Sleep(100 * time.Millisecond)
	}

	c.mu.Lock()
	lat := slices.Clone(c.latencies)
	firstErrors := slices.Clone(c.firstErrors)
	c.mu.Unlock()
	slices.Sort(lat)
	pct := func(q float64) time.Duration {
		if len(lat) == 0 {
			return 0
		}
		return lat[int(q*float64(len(lat)-1))]
	}
	secs := elapsed.Seconds()
	t.Logf("load: %v with %d tunnels: %d messages sent, %d echoed in order (%.0f/s); %d proxy requests (%.0f/s), %d decisions (%.0f/s); HTTP latency p50 %v p99 %v max %v; %.0f rule reloads",
		elapsed.Round(time.Millisecond), c.tunnelsOpened.Load(), c.messagesSent.Load(), c.messagesEchoed.Load(), float64(c.messagesEchoed.Load())/secs,
		c.httpRequests.Load(), float64(c.httpRequests.Load())/secs, c.decisionRequests.Load(), float64(c.decisionRequests.Load())/secs,
		pct(0.5).Round(time.Microsecond), pct(0.99).Round(time.Microsecond), pct(1).Round(time.Microsecond), reloads)
	t.Logf("after: proxy %.0f goroutines, %.0f open files; upstream saw close codes %v", after["go_goroutines"], after["process_open_fds"], wsUp.closeCodes())
	if n := c.wrongAnswers.Load(); n > 0 {
		t.Errorf("%d wrong answers", n)
	}
	if n := c.messageErrors.Load(); n > 0 {
		t.Errorf("%d messages lost, reordered or failed", n)
	}
	if c.messagesEchoed.Load() != c.messagesSent.Load() {
		t.Errorf("%d messages sent, %d echoed", c.messagesSent.Load(), c.messagesEchoed.Load())
	}
	if n := closeErrors.Load(); n > 0 {
		t.Errorf("%d tunnels did not close cleanly", n)
	}
	if reloads < 2 {
		t.Errorf("%.0f rule reloads, want 2", reloads)
	}
	if len(firstErrors) > 0 {
		t.Errorf("first errors:\n%s", strings.Join(firstErrors, "\n"))
	}
}

// tunnelLoad sends bursts of one to four numbered messages of varied size
// on cl until stop, reading each burst's echoes back in order.
func tunnelLoad(id int, cl *wsClient, sz soakSize, stop <-chan struct{}, c *counters) {
	rng := rand.New(rand.NewPCG(uint64(id), 7))
	seq := 0
	// Spread the tunnels' first bursts over one interval.
	timer := time.NewTimer(time.Duration(rng.Int64N(int64(sz.msgInterval))))
	defer timer.Stop()
	for {
		select {
		case <-stop:
			return
		case <-timer.C:
		}
		burst := 1 + rng.IntN(4)
		sent := make([][]byte, burst)
		cl.conn.SetDeadline(time.Now().Add(sz.readWait))
		for k := range sent {
			msg := fmt.Appendf(nil, "%d:%d:", id, seq)
			msg = append(msg, bytes.Repeat([]byte{'a' + byte(seq%26)}, rng.IntN(2048))...)
			seq++
			if err := cl.send(msg); err != nil {
				c.messageErrors.Add(1)
				c.fail("tunnel %d send: %v", id, err)
				return
			}
			c.messagesSent.Add(1)
			sent[k] = msg
		}
		for _, want := range sent {
			got, err := cl.recv()
			if err != nil {
				c.messageErrors.Add(1)
				c.fail("tunnel %d recv: %v", id, err)
				return
			}
			if !bytes.Equal(got, want) {
				c.messageErrors.Add(1)
				c.fail("tunnel %d: got %.40q, want %.40q", id, got, want)
				return
			}
			c.messagesEchoed.Add(1)
		}
		cl.conn.SetDeadline(time.Time{})
		timer.Reset(time.Duration(rng.Int64N(2 * int64(sz.msgInterval))))
	}
}

// getProbe is a GET of httpLoad's rotation and the answer it must get.
type getProbe struct {
	decision bool   // to the decision API, not the proxy
	path     string // below the proxy's or the decision API's URL
	status   int
	user     string // the X-User the answer must carry; "" checks none
}

// getProbes follow httpLoad's POST: a denied proxy request, an allowed and
// a denied decision.
var getProbes = []getProbe{
	{path: "/private/x", status: 403},
	{decision: true, path: "/api/items", status: 200, user: "anonymous"},
	{decision: true, path: "/private/x", status: 403},
}

// probe sends pr to p and counts the request, and a wrong answer.
func (c *counters) probe(client *http.Client, p *servertest.Server, pr getProbe) {
	base, count, what := p.URL(), &c.httpRequests, "GET "+pr.path
	if pr.decision {
		base, count, what = p.DecisionsURL(), &c.decisionRequests, "decision "+pr.path
	}
	res, err := client.Get(base + pr.path)
	count.Add(1)
	if err == nil {
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
	}
	if err != nil || res.StatusCode != pr.status || (pr.user != "" && res.Header.Get("X-User") != pr.user) {
		c.wrongAnswers.Add(1)
		c.fail("%s: %v", what, statusOf(res, err))
	}
}

// httpLoad sends rate requests a second until stop, rotating through an
// allowed POST through the proxy and [getProbes], and checks each answer.
func httpLoad(p *servertest.Server, rate int, stop <-chan struct{}, c *counters) {
	tick := time.NewTicker(time.Second / time.Duration(max(rate, 1)))
	defer tick.Stop()
	client := &http.Client{Timeout: 30 * time.Second}
	for n := 0; ; n++ {
		select {
		case <-stop:
			client.CloseIdleConnections()
			return
		case <-tick.C:
		}
		t0 := time.Now()
		switch k := n % (1 + len(getProbes)); k {
		case 0:
			path := fmt.Sprintf("/api/items/%d", n)
			res, err := client.Post(p.URL()+path, "text/plain", strings.NewReader("body"))
			c.httpRequests.Add(1)
			var seen httpSeen
			if err == nil {
				err = json.NewDecoder(res.Body).Decode(&seen)
				res.Body.Close()
			}
			if err != nil || res.StatusCode != 200 || seen != (httpSeen{"POST", path, "anonymous"}) {
				c.wrongAnswers.Add(1)
				c.fail("POST %s: %v %+v", path, err, seen)
			}
		default:
			c.probe(client, p, getProbes[k-1])
		}
		c.latency(time.Since(t0))
	}
}

func statusOf(res *http.Response, err error) string {
	if err != nil {
		return err.Error()
	}
	return res.Status
}

// reload replaces the rules file (by rename, so it is never half written)
// and waits until GET /v2/x answers want.
func reload(t *testing.T, p *servertest.Server, rules string, want int) {
	t.Helper()
	p.ReplaceRules(t, rules)
	deadline := time.Now().Add(20 * time.Second)
	for {
		res, err := http.Get(p.URL() + "/v2/x")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == want {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the reload was not applied: /v2/x answers %v", statusOf(res, err))
		}
		time.Sleep(50 * time.Millisecond)
	}
}
