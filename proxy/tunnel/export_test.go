package tunnel

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"
)

// What the package's internal tests share with its external ones
// (package tunnel_test, which drive the server through the proxy handler).

// StreamUpstream is a real loopback server: /sse ticks an event every
// 50 ms, /ndjson a JSON line every 50 ms, both until the client goes; /blob
// sends a known-length body of ?n bytes, slowly enough to outlive a short
// write timeout when ?slow is set.
func StreamUpstream(t testing.TB) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/sse", "/ndjson":
			if r.URL.Path == "/sse" {
				w.Header().Set("Content-Type", "text/event-stream")
			} else {
				w.Header().Set("Content-Type", "application/x-ndjson")
			}
			tick := time.NewTicker(50 * time.Millisecond)
			defer tick.Stop()
			for i := 0; ; i++ {
				if r.URL.Path == "/sse" {
					fmt.Fprintf(w, "data: tick %d\n\n", i)
				} else {
					fmt.Fprintf(w, "{\"tick\":%d}\n", i)
				}
				w.(http.Flusher).Flush()
				select {
				case <-r.Context().Done():
					return
				case <-tick.C:
				}
			}
		case "/blob":
			n, _ := strconv.Atoi(r.URL.Query().Get("n"))
			w.Header().Set("Content-Length", strconv.Itoa(n))
			buf := make([]byte, 64<<10)
			for n > 0 {
				k := min(n, len(buf))
				if _, err := w.Write(buf[:k]); err != nil {
					return
				}
				n -= k
			}
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

// Relays are the relays every tunnel test runs against.
var Relays = []Relay{RelayGoroutines, RelayPoll}

// EachRelay runs test once per relay, each as a subtest named after it
// ("goroutines", "poll").
func EachRelay(t *testing.T, test func(t *testing.T, relay Relay)) {
	t.Helper()
	for _, r := range Relays {
		t.Run(r.String(), func(t *testing.T) { test(t, r) })
	}
}

// EachAtMost calls f(0) … f(n-1), each on a goroutine of its own and no
// more than parallel at a time, and returns once every call has returned.
func EachAtMost(n, parallel int, f func(i int)) {
	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	for i := range n {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			f(i)
		}()
	}
	wg.Wait()
}

// OpenFDs counts this process's open file descriptors; it skips the test
// where they cannot be counted (no /proc/self/fd).
func OpenFDs(t testing.TB) int {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("cannot count open files: %v", err)
	}
	return len(entries)
}
