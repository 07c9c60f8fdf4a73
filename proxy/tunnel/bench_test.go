package tunnel

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/portcullis-proxy/portcullis/pipeline"
	"github.com/portcullis-proxy/portcullis/rules"

	"github.com/portcullis-proxy/portcullis/testsupport/wsframe"
)

// The benchmarks compare the tunnel with a direct connection and with a
// bare httputil.ReverseProxy tunnel measured in the same run, and report
// the ratios:
//
//	go test -run '^$' -bench BenchmarkTunnel ./proxy/tunnel/
//
// BenchmarkTunnelIdle runs its WebSocket clients and upstream in a second
// process, so that the proxy's own memory is measured and each process
// stays within its open-file limit; PORTCULLIS_TUNNEL_BENCH_N sets the
// number of tunnels (default 1000) and PORTCULLIS_TUNNEL_BENCH_WORKERS the
// goroutines that share a burst's client Close frames (default: one per
// processor):
//
//	PORTCULLIS_TUNNEL_BENCH_N=5000 go test -run '^$' -bench BenchmarkTunnelIdle -benchtime 1x ./proxy/tunnel/

// benchUpstream is a plain WebSocket server for the benchmarks: on /echo
// it echoes every frame, on /sink it discards data frames and answers each
// text frame with "ok". It answers a Close with the same Close.
func benchUpstream(tb testing.TB) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, _, _, err := ws.UpgradeHTTP(r, w)
		if err != nil {
			return
		}
		defer conn.Close()
		wsframe.Serve(conn, r.URL.Path != "/echo", 64<<10)
	}))
	tb.Cleanup(srv.Close)
	return srv
}

// benchTargets are the ways to reach the bench upstream: directly,
// through httputil, through a tunnel on each relay.
type benchTargets struct {
	names []string
	urls  map[string]string // ws:// base URLs
}

const (
	viaDirect   = "direct"
	viaHTTPUtil = "httputil"
	viaTunnel   = "tunnel"
	viaPoll     = "tunnel-poll" // RelayPoll
)

// tunnelFront serves every request as an authorised upgrade to target.
func tunnelFront(tb testing.TB, target string, tunnels *Server, policy pipeline.WebSocketPolicy, session func() *pipeline.Session) *httptest.Server {
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req, err := tunnelRequestFor(r, target, policy, session(), false)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		tunnels.ServeTunnel(w, r, req)
	}))
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), ioWait)
		defer cancel()
		_ = tunnels.Shutdown(ctx)
		front.Close()
	})
	return front
}

func newBenchTargets(b *testing.B) benchTargets {
	up := benchUpstream(b)
	target, _ := url.Parse(up.URL)
	rp := &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) { pr.SetURL(target) }}
	viaRP := httptest.NewServer(rp)
	b.Cleanup(viaRP.Close)
	session := func() *pipeline.Session { return &pipeline.Session{Subject: "bench"} }
	viaT := tunnelFront(b, up.URL, New(Options{}), rules.DefaultWebSocketPolicy().WebSocketPolicy, session)
	viaP := tunnelFront(b, up.URL, New(Options{Relay: RelayPoll}), rules.DefaultWebSocketPolicy().WebSocketPolicy, session)
	toWS := func(u string) string { return "ws" + strings.TrimPrefix(u, "http") }
	return benchTargets{
		names: []string{viaDirect, viaHTTPUtil, viaTunnel, viaPoll},
		urls: map[string]string{viaDirect: toWS(up.URL), viaHTTPUtil: toWS(viaRP.URL), viaTunnel: toWS(viaT.URL),
			viaPoll: toWS(viaP.URL)},
	}
}

// order returns the variants in the order of round r: each round starts
// with another one, so that none always runs after the same neighbour.
func (tg benchTargets) order(r int) []string {
	n := len(tg.names)
	out := make([]string, n)
	for i := range n {
		out[i] = tg.names[(r+i)%n]
	}
	return out
}

// measure warms each target up with warmup operations, then times b.N
// operations split into benchRounds rounds, the targets taking turns in
// an order that changes every round; it returns each target's time.
func (tg benchTargets) measure(b *testing.B, warmup int, run func(name string, n int) error) map[string]time.Duration {
	for _, name := range tg.names {
		if err := run(name, warmup); err != nil {
			b.Fatalf("%s warm-up: %v", name, err)
		}
	}
	spent := map[string]time.Duration{}
	b.ResetTimer()
	for r := range benchRounds {
		n := b.N / benchRounds
		if r < b.N%benchRounds {
			n++
		}
		for _, name := range tg.order(r) {
			start := time.Now()
			if err := run(name, n); err != nil {
				b.Fatalf("%s: %v", name, err)
			}
			spent[name] += time.Since(start)
		}
	}
	b.StopTimer()
	return spent
}

// benchConn is a client connection for the benchmarks.
type benchConn struct {
	conn net.Conn
	fr   *wsframe.Reader
}

func dialBench(tb testing.TB, u string) *benchConn {
	conn, br, _, err := ws.Dial(context.Background(), u)
	if err != nil {
		tb.Fatalf("dial %s: %v", u, err)
	}
	c := &benchConn{conn: conn, fr: wsframe.NewReader(conn, 64<<10)}
	if br != nil {
		tb.Fatalf("unexpected early bytes")
	}
	return c
}

// benchRounds splits the operations into interleaved rounds so that all
// variants see the same machine conditions.
const benchRounds = 16

// BenchmarkTunnelEcho64 measures 64-byte echo round trips over 16
// connections. ns/op is the tunnel's time per round trip (aggregate over
// the connections); x-httputil > 1 means the tunnel is faster than
// httputil's.
func BenchmarkTunnelEcho64(b *testing.B) {
	const conns = 16
	tg := newBenchTargets(b)
	msg := wsframe.Masked(ws.OpBinary, make([]byte, 64))
	clients := map[string][]*benchConn{}
	for _, name := range tg.names {
		for range conns {
			c := dialBench(b, tg.urls[name]+"/echo")
			defer c.conn.Close()
			clients[name] = append(clients[name], c)
		}
	}
	run := func(cs []*benchConn, n int) error {
		var wg sync.WaitGroup
		errs := make(chan error, len(cs))
		for i, c := range cs {
			k := n / len(cs)
			if i < n%len(cs) {
				k++
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range k {
					if _, err := c.conn.Write(msg); err != nil {
						errs <- err
						return
					}
					if _, err := c.fr.Skip(); err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		return <-errs
	}
	spent := tg.measure(b, 50*conns, func(name string, n int) error { return run(clients[name], n) })
	per := func(name string) float64 { return float64(spent[name].Nanoseconds()) / float64(b.N) }
	b.ReportMetric(per(viaTunnel), "ns/op")
	b.ReportMetric(per(viaDirect), "direct-ns/rt")
	b.ReportMetric(per(viaHTTPUtil), "httputil-ns/rt")
	b.ReportMetric(per(viaHTTPUtil)/per(viaTunnel), "x-httputil")
	b.ReportMetric(per(viaDirect)/per(viaTunnel), "x-direct")
	b.ReportMetric(per(viaPoll), "poll-ns/rt")
	b.ReportMetric(per(viaTunnel)/per(viaPoll), "poll-x-goroutines")
}

// BenchmarkTunnelBulk32K measures one-way throughput of 32 KiB binary
// frames on one connection. MB/s is the tunnel's; pct-direct is the
// tunnel's throughput as a percentage of the direct connection's.
func BenchmarkTunnelBulk32K(b *testing.B) {
	const size = 32 << 10
	tg := newBenchTargets(b)
	data := wsframe.Masked(ws.OpBinary, make([]byte, size))
	done := wsframe.Masked(ws.OpText, []byte("done"))
	clients := map[string]*benchConn{}
	for _, name := range tg.names {
		c := dialBench(b, tg.urls[name]+"/sink")
		defer c.conn.Close()
		clients[name] = c
	}
	run := func(c *benchConn, n int) error {
		errc := make(chan error, 1)
		go func() {
			_, err := c.fr.Skip() // "ok" after "done"
			errc <- err
		}()
		for range n {
			if _, err := c.conn.Write(data); err != nil {
				return err
			}
		}
		if _, err := c.conn.Write(done); err != nil {
			return err
		}
		return <-errc
	}
	spent := tg.measure(b, 200, func(name string, n int) error { return run(clients[name], n) })
	mbps := func(name string) float64 {
		return float64(b.N) * size / spent[name].Seconds() / 1e6
	}
	b.ReportMetric(float64(spent[viaTunnel].Nanoseconds())/float64(b.N), "ns/op")
	b.ReportMetric(mbps(viaDirect), "direct-MB/s")
	b.ReportMetric(mbps(viaHTTPUtil), "httputil-MB/s")
	b.ReportMetric(mbps(viaTunnel), "tunnel-MB/s")
	b.ReportMetric(100*mbps(viaTunnel)/mbps(viaDirect), "pct-direct")
	b.ReportMetric(mbps(viaTunnel)/mbps(viaHTTPUtil), "x-httputil")
	b.ReportMetric(mbps(viaPoll), "poll-MB/s")
	b.ReportMetric(mbps(viaPoll)/mbps(viaTunnel), "poll-x-goroutines")
}

// benchPeerEnv starts the test binary as the peer process.
const benchPeerEnv = "PORTCULLIS_TUNNEL_BENCH_PEER"

// peer drives the second process of BenchmarkTunnelIdle.
type peer struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Scanner
}

func startPeer(b *testing.B) *peer {
	cmd := exec.Command(os.Args[0], "-test.run=^TestTunnelBenchPeer$", "-test.count=1")
	cmd.Env = append(os.Environ(), benchPeerEnv+"=1")
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	p := &peer{cmd: cmd, in: in, out: bufio.NewScanner(out)}
	b.Cleanup(func() {
		in.Close()
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(ioWait):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	return p
}

// ask sends a command line and returns the answer line's fields.
func (p *peer) ask(b *testing.B, format string, args ...any) []string {
	if _, err := fmt.Fprintf(p.in, format+"\n", args...); err != nil {
		b.Fatalf("peer: %v", err)
	}
	for p.out.Scan() {
		line := p.out.Text()
		if f := strings.Fields(line); len(f) > 0 && f[0] == "peer:" {
			return f[1:]
		}
	}
	b.Fatalf("peer ended: %v", p.out.Err())
	return nil
}

// liveMemory is the heap in use plus goroutine stacks, after enough
// collections for idle goroutines' stacks to shrink to what they use (each
// collection halves a stack that is less than a quarter used).
func liveMemory() (heap, stack uint64) {
	for range 5 {
		runtime.GC()
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc, ms.StackInuse
}

// BenchmarkTunnelIdle opens, on each relay, N idle tunnels (PORTCULLIS_TUNNEL_BENCH_N,
// default 1000) from a peer process, measures what each costs this
// process, then lets them all reach the same session expiry and reports
// how late the clients received their Close.
func BenchmarkTunnelIdle(b *testing.B) {
	for _, r := range Relays {
		b.Run(r.String(), func(b *testing.B) { benchmarkTunnelIdle(b, r) })
	}
}

func benchmarkTunnelIdle(b *testing.B, relay Relay) {
	n := 1000
	if s := os.Getenv("PORTCULLIS_TUNNEL_BENCH_N"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil || n <= 0 {
			b.Fatalf("PORTCULLIS_TUNNEL_BENCH_N=%q", s)
		}
	}
	p := startPeer(b)
	upstreamAddr := p.ask(b, "upstream")[0]

	// Every tunnel is bound to a session expiring at the same instant,
	// far enough ahead to open them all first.
	expiry := time.Now().Add(3*time.Second + time.Duration(n)*2*time.Millisecond)
	policy := rules.DefaultWebSocketPolicy().WebSocketPolicy
	sent := &lateMetrics{}
	tunnels := New(Options{Metrics: sent, Relay: relay})
	if s := os.Getenv("PORTCULLIS_TUNNEL_BENCH_WORKERS"); s != "" {
		// How many goroutines share a burst's client Close frames
		// (default: one per processor), to compare.
		w, err := strconv.Atoi(s)
		if err != nil || w <= 0 {
			b.Fatalf("PORTCULLIS_TUNNEL_BENCH_WORKERS=%q", s)
		}
		tunnels.wheel.workers = w
	}
	front := tunnelFront(b, "http://"+upstreamAddr, tunnels, policy,
		func() *pipeline.Session { return &pipeline.Session{Subject: "bench", ExpiresAt: expiry} })

	heap0, stack0 := liveMemory()
	g0 := runtime.NumGoroutine()
	b.ResetTimer()
	if got := p.ask(b, "open %d %s", n, "ws"+strings.TrimPrefix(front.URL, "http")+"/idle"); got[0] != strconv.Itoa(n) {
		b.Fatalf("peer opened %v tunnels, want %d", got, n)
	}
	waitFor(b, "all tunnels open", func() bool { return tunnels.Active() == n })
	time.Sleep(200 * time.Millisecond) // let the HTTP server's goroutines end
	heap1, stack1 := liveMemory()
	g1 := runtime.NumGoroutine()
	if time.Now().After(expiry) {
		b.Fatalf("opening %d tunnels outlasted the session expiry; raise the margin", n)
	}

	cpu0 := cpuTime(b)
	late := p.ask(b, "await %d %d", n, expiry.UnixNano())
	b.StopTimer()
	waitFor(b, "all tunnels closed", func() bool { return tunnels.Active() == 0 })
	cpu1 := cpuTime(b)

	perHeap := (float64(heap1) - float64(heap0)) / float64(n)
	perStack := (float64(stack1) - float64(stack0)) / float64(n)
	b.ReportMetric(float64(n), "tunnels")
	b.ReportMetric(perHeap+perStack, "B/idle-tunnel")
	b.ReportMetric(perHeap, "heap-B/idle-tunnel")
	b.ReportMetric(perStack, "stack-B/idle-tunnel")
	b.ReportMetric(float64(g1-g0)/float64(n), "goroutines/idle-tunnel")
	for i, name := range []string{"close-late-p50-ms", "close-late-p99-ms", "close-late-max-ms"} {
		ns, _ := strconv.ParseFloat(late[i], 64)
		b.ReportMetric(ns/1e6, name)
	}
	// The same, seen by the proxy: when it wrote each client's Close.
	for name, q := range map[string]float64{"sent-late-min-ms": 0, "sent-late-p50-ms": 0.5, "sent-late-p99-ms": 0.99, "sent-late-max-ms": 1} {
		b.ReportMetric(float64(sent.quantile(q).Microseconds())/1000, name)
	}
	// The proxy's CPU time for a whole close (deadline, two Close frames,
	// the replies, both sockets, the log line): what bounds how fast a
	// crowd of tunnels reaching a deadline together can be closed.
	b.ReportMetric(float64((cpu1-cpu0).Microseconds())/float64(n), "cpu-us/close")
	b.ReportMetric(0, "ns/op")
}

// lateMetrics records how late deadline closes were written.
type lateMetrics struct {
	NopMetrics
	mu   sync.Mutex
	late []time.Duration
}

func (m *lateMetrics) DeadlineClose(_, _ string, late time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.late = append(m.late, late)
}

// quantile returns the q-quantile (0..1) of the recorded lateness.
func (m *lateMetrics) quantile(q float64) time.Duration {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.late) == 0 {
		return 0
	}
	slices.Sort(m.late)
	return m.late[min(len(m.late)-1, int(q*float64(len(m.late))))]
}

// cpuTime is the CPU time this process used so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TestTunnelBenchPeer is the peer process of BenchmarkTunnelIdle; it does
// nothing in a normal test run. It reads commands on stdin and answers on
// stdout with lines starting "peer:":
//
//	upstream           starts the upstream; answers its address
//	open N URL         opens N clients to URL; answers how many opened
//	await N T          waits for a Close on every client, answers it, and
//	                   answers p50, p99 and max of (arrival - T) in ns
func TestTunnelBenchPeer(t *testing.T) {
	if os.Getenv(benchPeerEnv) != "1" {
		t.Skip("runs only as BenchmarkTunnelIdle's peer process")
	}
	var clients []net.Conn
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		f := strings.Fields(in.Text())
		switch {
		case len(f) == 1 && f[0] == "upstream":
			srv := benchUpstream(t)
			fmt.Println("peer:", strings.TrimPrefix(srv.URL, "http://"))
		case len(f) == 3 && f[0] == "open":
			n, _ := strconv.Atoi(f[1])
			clients = openPeerClients(n, f[2])
			fmt.Println("peer:", len(clients))
		case len(f) == 3 && f[0] == "await":
			t0, _ := strconv.ParseInt(f[2], 10, 64)
			late := awaitCloses(clients, time.Unix(0, t0))
			fmt.Println("peer:", late[0], late[1], late[2])
		default:
			fmt.Println("peer: unknown command")
		}
	}
	for _, c := range clients {
		c.Close()
	}
}

// openPeerClients dials n WebSocket clients to u, 64 at a time.
func openPeerClients(n int, u string) []net.Conn {
	conns := make([]net.Conn, n)
	EachAtMost(n, 64, func(i int) {
		conn, _, _, err := ws.Dial(context.Background(), u)
		if err != nil {
			fmt.Fprintln(os.Stderr, "peer dial:", err)
			return
		}
		conns[i] = conn
	})
	return slices.DeleteFunc(conns, func(c net.Conn) bool { return c == nil })
}

// awaitCloses waits for a Close on every client, answers it, and returns
// the p50, p99 and max lateness of the arrivals after t0, in ns.
func awaitCloses(conns []net.Conn, t0 time.Time) [3]int64 {
	late := make([]int64, len(conns))
	var wg sync.WaitGroup
	for i, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = c.SetReadDeadline(t0.Add(time.Minute))
			f, err := readFrameFrom(c)
			late[i] = time.Since(t0).Nanoseconds()
			if err != nil || f.h.OpCode != ws.OpClose {
				// Counted as an hour late: the maximum shows it.
				fmt.Fprintf(os.Stderr, "peer: client %d got no Close: %v (%v)\n", i, err, f.h.OpCode)
				late[i] = int64(time.Hour)
				return
			}
			_ = ws.WriteFrame(c, ws.MaskFrameInPlace(ws.NewCloseFrame(f.payload)))
		}()
	}
	wg.Wait()
	slices.Sort(late)
	if len(late) == 0 {
		return [3]int64{}
	}
	return [3]int64{late[len(late)/2], late[len(late)*99/100], late[len(late)-1]}
}
