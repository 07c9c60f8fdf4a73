package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httputil"
	"net/http/pprof"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gobwas/ws"

	"github.com/portcullis-proxy/portcullis/internal/app"
	"github.com/portcullis-proxy/portcullis/proxy"

	"github.com/portcullis-proxy/portcullis/testsupport/wsframe"
)

// Environment of the role processes.
const (
	envUpstream = "PORTCULLIS_BENCH_UPSTREAM" // httputil: the upstream's base URL
	envConfig   = "PORTCULLIS_BENCH_CONFIG"   // portcullis: the configuration file
	envLogFile  = "PORTCULLIS_BENCH_LOG"      // portcullis: where its log goes
	envPprof    = "PORTCULLIS_BENCH_PPROF"    // portcullis, httputil: "1" serves net/http/pprof
	envPool     = "PORTCULLIS_BENCH_POOL"     // httputil: "1" gives it a buffer pool
)

// runRole runs the role named by $PORTCULLIS_BENCH_ROLE; it returns when
// the harness closes the role's stdin.
func runRole(role string) error {
	switch role {
	case "upstream":
		return roleUpstream()
	case "httputil":
		return roleHTTPUtil()
	case "portcullis":
		return rolePortcullis()
	case "wsclient":
		return roleWSClient()
	case "collector":
		return roleCollector()
	}
	return fmt.Errorf("unknown role %q", role)
}

// listenLoopback listens on a free loopback port.
func listenLoopback() (net.Listener, error) { return net.Listen("tcp", "127.0.0.1:0") }

// upstreamBody is what the upstream answers to plain HTTP requests.
var upstreamBody = []byte("hello from the upstream\n")

// roleUpstream serves plain HTTP (200, a short body), WebSocket on any
// path whose last segment is "echo", "sink" or "idle" (idle is echo), and
// an event stream held idle on any path ending in "/events": its headers
// and one comment line, then nothing until the client goes.
func roleUpstream() error {
	ln, err := listenLoopback()
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/events") {
			w.Header().Set("Content-Type", "text/event-stream")
			w.Header().Set("Cache-Control", "no-cache")
			_, _ = io.WriteString(w, sseHello)
			w.(http.Flusher).Flush()
			<-r.Context().Done()
			return
		}
		if strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
			conn, _, _, err := ws.UpgradeHTTP(r, w)
			if err != nil {
				return
			}
			defer conn.Close()
			sink := strings.HasSuffix(r.URL.Path, "/sink")
			size := 4 << 10
			if sink {
				size = 64 << 10
			}
			wsframe.Serve(conn, sink, size)
			return
		}
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Content-Length", strconv.Itoa(len(upstreamBody)))
		_, _ = w.Write(upstreamBody)
	}), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	say("ready addr=%s", ln.Addr())
	serveCommands(func([]string) { say("error unknown command") })
	return srv.Close()
}

// roleHTTPUtil is the reference proxy: a bare httputil.ReverseProxy to the
// upstream (it carries WebSocket upgrades itself, copying bytes both ways),
// on portcullis's own upstream transport so that both pay the same for
// upstream connections.
func roleHTTPUtil() error {
	target, err := url.Parse(os.Getenv(envUpstream))
	if err != nil || target.Host == "" {
		return fmt.Errorf("%s=%q is not a URL", envUpstream, os.Getenv(envUpstream))
	}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.SetXForwarded()
		},
		Transport: proxy.NewTransport(),
	}
	if os.Getenv(envPool) == "1" {
		rp.BufferPool = &bufferPool{}
	}
	ln, err := listenLoopback()
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: rp, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	extra, err := maybePprof()
	if err != nil {
		return err
	}
	say("ready addr=%s%s", ln.Addr(), extra)
	serveCommands(func([]string) { say("error unknown command") })
	return srv.Close()
}

// bufferPool lends the reference proxy its copy buffers, as portcullis's
// proxy does.
type bufferPool struct{ p sync.Pool }

func (b *bufferPool) Get() []byte {
	if v, ok := b.p.Get().(*[]byte); ok {
		return *v
	}
	return make([]byte, 32<<10)
}

func (b *bufferPool) Put(buf []byte) { b.p.Put(&buf) }

// maybePprof serves net/http/pprof on a loopback port when asked to and
// returns " pprof=ADDR" for the ready line.
func maybePprof() (string, error) {
	if os.Getenv(envPprof) != "1" {
		return "", nil
	}
	ln, err := listenLoopback()
	if err != nil {
		return "", err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	go func() { _ = http.Serve(ln, mux) }()
	return " pprof=" + ln.Addr().String(), nil
}

// rolePortcullis runs portcullis from a configuration file exactly as
// `portcullis serve` assembles it (internal/app), in a process of its own,
// with its log written to a file.
func rolePortcullis() error {
	logFile, err := os.Create(os.Getenv(envLogFile))
	if err != nil {
		return err
	}
	defer logFile.Close()
	srv, err := app.Open(os.Getenv(envConfig), nil, logFile)
	if err != nil {
		return err
	}
	extra, err := maybePprof()
	if err != nil {
		return err
	}
	say("ready proxy=%s api=%s%s", srv.Addr("proxy"), srv.Addr("api"), extra)
	serveCommands(func(f []string) {
		switch f[0] {
		case "tunnels":
			say("active=%d", srv.Tunnels.Active())
		default:
			say("error unknown command")
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return srv.Shutdown(ctx)
}

// sseHello is the first (and only) thing the upstream's event stream
// sends: a comment line, then the blank line that ends an event.
const sseHello = ": open\n\n"

// wsClient is one idle client connection of the wsclient role.
type wsClient struct {
	conn   net.Conn
	opened time.Time
}

// roleWSClient holds many idle WebSocket clients for the idle-tunnel
// figures, and idle event streams for figure 10. Commands:
//
//	open N URL [NAME=VALUE]  dial N clients (64 at a time), with an extra
//	                         handshake header; answers opened= failed= secs=
//	sse N URL                open N event streams (64 at a time), each on a
//	                         connection of its own, read up to the
//	                         upstream's first event and hold them; answers
//	                         opened= failed= secs=
//	closesse                 end every event stream held; answers closed=
//	await T SECS             wait up to SECS for a Close on every client,
//	                         answer it, and report the lateness of the
//	                         arrivals after T (unix ns): min= (the earliest,
//	                         negative when early) p50= p99= max= (ns)
//	                         and how many came with each code
//	awaitlife D SECS         the same, each client's Close due D (a Go
//	                         duration) after it had its 101 answer
//	closeall                 send every client's Close and hang up
func roleWSClient() error {
	var clients []wsClient
	var streams []io.ReadCloser
	say("ready")
	serveCommands(func(f []string) {
		switch {
		case f[0] == "sse" && len(f) == 3:
			n, _ := strconv.Atoi(f[1])
			start := time.Now()
			got, failed, firstErr := openStreams(n, f[2])
			streams = append(streams, got...)
			msg := ""
			if firstErr != nil {
				msg = " first_error=" + strings.ReplaceAll(firstErr.Error(), " ", "_")
			}
			say("opened=%d failed=%d secs=%.3f%s", len(got), failed, time.Since(start).Seconds(), msg)
		case f[0] == "closesse":
			for _, b := range streams {
				b.Close()
			}
			say("closed=%d", len(streams))
			streams = nil
		case f[0] == "open" && len(f) >= 3:
			n, _ := strconv.Atoi(f[1])
			h := http.Header{}
			for _, kv := range f[3:] {
				if k, v, ok := strings.Cut(kv, "="); ok {
					if uv, err := url.PathUnescape(v); err == nil {
						h.Set(k, uv)
					}
				}
			}
			start := time.Now()
			cs, failed, firstErr := openClients(n, f[2], h)
			clients = append(clients, cs...)
			msg := ""
			if firstErr != nil {
				msg = " first_error=" + strings.ReplaceAll(firstErr.Error(), " ", "_")
			}
			say("opened=%d failed=%d secs=%.3f%s", len(cs), failed, time.Since(start).Seconds(), msg)
		case f[0] == "await" && len(f) == 3:
			t0, _ := strconv.ParseInt(f[1], 10, 64)
			secs, _ := strconv.Atoi(f[2])
			due := time.Unix(0, t0)
			say("%s", awaitCloses(clients, func(wsClient) time.Time { return due }, time.Duration(secs)*time.Second))
			closeClients(clients)
			clients = nil
		case f[0] == "awaitlife" && len(f) == 3:
			life, _ := time.ParseDuration(f[1])
			secs, _ := strconv.Atoi(f[2])
			say("%s", awaitCloses(clients, func(c wsClient) time.Time { return c.opened.Add(life) }, time.Duration(secs)*time.Second))
			closeClients(clients)
			clients = nil
		case f[0] == "closeall":
			n := len(clients)
			closeClients(clients)
			clients = nil
			say("closed=%d", n)
		default:
			say("error unknown command")
		}
	})
	closeClients(clients)
	for _, b := range streams {
		b.Close()
	}
	return nil
}

// openStreams opens n event streams from u, 64 requests at a time, each
// on a connection of its own, and returns their bodies once each has
// brought the upstream's first event.
func openStreams(n int, u string) ([]io.ReadCloser, int, error) {
	hc := &http.Client{Transport: &http.Transport{DisableCompression: true,
		ResponseHeaderTimeout: 30 * time.Second}}
	return openMany(n, func() (io.ReadCloser, error) {
		res, err := hc.Get(u)
		if err != nil {
			return nil, err
		}
		first := make([]byte, len(sseHello))
		switch _, err = io.ReadFull(res.Body, first); {
		case res.StatusCode != http.StatusOK:
			err = fmt.Errorf("status %d", res.StatusCode)
		case err == nil && string(first) != sseHello:
			err = fmt.Errorf("first event %q, want %q", first, sseHello)
		}
		if err != nil {
			res.Body.Close()
			return nil, err
		}
		return res.Body, nil
	})
}

// openClients dials n clients to u, 64 handshakes at a time.
func openClients(n int, u string, h http.Header) ([]wsClient, int, error) {
	d := ws.Dialer{Timeout: 30 * time.Second}
	if len(h) > 0 {
		d.Header = ws.HandshakeHeaderHTTP(h)
	}
	return openMany(n, func() (wsClient, error) {
		conn, br, _, err := d.Dial(context.Background(), u)
		if err == nil && br != nil {
			err = fmt.Errorf("unexpected bytes after the handshake")
			conn.Close()
		}
		if err != nil {
			return wsClient{}, err
		}
		return wsClient{conn: conn, opened: time.Now()}, nil
	})
}

// openMany calls open n times, 64 at a time, and returns what the calls
// that succeeded opened, how many failed and the first error.
func openMany[T any](n int, open func() (T, error)) ([]T, int, error) {
	out := make([]T, 0, n)
	sem := make(chan struct{}, 64)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		failed   int
		firstErr error
	)
	for range n {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			v, err := open()
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				failed++
				if firstErr == nil {
					firstErr = err
				}
				return
			}
			out = append(out, v)
		}()
	}
	wg.Wait()
	return out, failed, firstErr
}

// awaitCloses waits for a Close on every client, answers it, and reports
// the lateness of each arrival after the client's due time, as
// percentiles, and the close codes seen.
func awaitCloses(clients []wsClient, due func(wsClient) time.Time, limit time.Duration) string {
	late := make([]int64, len(clients)) // may be negative: early
	closed := make([]bool, len(clients))
	codes := make([]int, len(clients))
	reasons := make([]string, len(clients))
	// The clients share the machine with the proxy: to measure the proxy
	// and not their own work, they note the arrival at once and answer
	// the Close only once every client has its Close (or gave up).
	var arrived, wg sync.WaitGroup
	release := make(chan struct{})
	for i, c := range clients {
		arrived.Add(1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			t0 := due(c)
			_ = c.conn.SetReadDeadline(t0.Add(limit))
			fr := wsframe.NewReader(c.conn, 512)
			for {
				h, p, err := fr.Read()
				if err != nil {
					arrived.Done()
					return
				}
				if h.OpCode != ws.OpClose {
					continue
				}
				late[i], closed[i] = time.Since(t0).Nanoseconds(), true
				arrived.Done()
				code, reason := ws.ParseCloseFrameData(p)
				codes[i], reasons[i] = int(code), reason
				<-release
				_ = c.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
				_ = ws.WriteFrame(c.conn, ws.MaskFrameInPlace(ws.NewCloseFrame(ws.NewCloseFrameBody(code, ""))))
				return
			}
		}()
	}
	arrived.Wait()
	close(release)
	wg.Wait()
	byCode := map[string]int{}
	var got []int64
	for i := range clients {
		if !closed[i] {
			byCode["none"]++
			continue
		}
		got = append(got, late[i])
		key := strconv.Itoa(codes[i])
		if reasons[i] != "" {
			key += ":" + strings.ReplaceAll(reasons[i], " ", "_")
		}
		byCode[key]++
	}
	slices.Sort(got)
	var b strings.Builder
	fmt.Fprintf(&b, "received=%d", len(got))
	if len(got) > 0 {
		fmt.Fprintf(&b, " min=%d p50=%d p99=%d max=%d", got[0], pct(got, 50), pct(got, 99), got[len(got)-1])
	}
	for _, k := range slices.Sorted(maps.Keys(byCode)) {
		fmt.Fprintf(&b, " code=%s/%d", k, byCode[k])
	}
	return b.String()
}

// closeClients sends each client's Close (1000) and hangs up once the
// answer came or after a short wait.
func closeClients(clients []wsClient) {
	var wg sync.WaitGroup
	sem := make(chan struct{}, 256)
	for _, c := range clients {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			_ = c.conn.SetDeadline(time.Now().Add(3 * time.Second))
			if err := ws.WriteFrame(c.conn, ws.MaskFrameInPlace(ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusNormalClosure, "")))); err == nil {
				fr := wsframe.NewReader(c.conn, 512)
				for {
					h, err := fr.Skip()
					if err != nil || h.OpCode == ws.OpClose {
						break
					}
				}
			}
			c.conn.Close()
		}()
	}
	wg.Wait()
}

// pct returns the p-th percentile of sorted values (nearest rank).
func pct[T ~int64 | ~float64](sorted []T, p int) T {
	if len(sorted) == 0 {
		return 0
	}
	i := (len(sorted)*p + 99) / 100
	if i < 1 {
		i = 1
	}
	if i > len(sorted) {
		i = len(sorted)
	}
	return sorted[i-1]
}
