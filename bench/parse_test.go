package main

import (
	"strings"
	"testing"
	"time"
)

// wrkOK and wrkErrors are wrk 4.1.0 outputs (Debian's) taken from real
// runs against a loopback server.
const wrkOK = `Running 1s test @ http://127.0.0.1:18931/
  1 threads and 4 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   209.87us  501.78us   5.58ms   94.79%
    Req/Sec    32.77k     4.75k   39.19k    70.00%
  Latency Distribution
     50%   97.00us
     75%  139.00us
     90%  255.00us
     99%    3.04ms
  32540 requests in 1.00s, 3.66MB read
Requests/sec:  32511.42
Transfer/sec:      3.66MB
`

const wrkErrors = `Running 1s test @ http://127.0.0.1:18931/bad
  1 threads and 4 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   365.24us  830.38us   7.26ms   89.81%
    Req/Sec    43.05k   713.33    44.06k    60.00%
  Latency Distribution
     50%   71.00us
     75%  128.00us
     90%    1.23ms
     99%    3.95ms
  42662 requests in 1.00s, 5.57MB read
  Non-2xx or 3xx responses: 42662
Requests/sec:  42619.59
Transfer/sec:      5.57MB
`

func TestParseWrk(t *testing.T) {
	r, err := parseWrk(wrkOK)
	if err != nil {
		t.Fatal(err)
	}
	want := httpResult{RPS: 32511.42, P50: 97 * time.Microsecond, P99: 3040 * time.Microsecond, Requests: 32540}
	if r != want {
		t.Errorf("parseWrk = %+v, want %+v", r, want)
	}
	for name, out := range map[string]string{
		"non-2xx":       wrkErrors,
		"socket errors": strings.Replace(wrkOK, "Requests/sec", "  Socket errors: connect 0, read 3, write 0, timeout 0\nRequests/sec", 1),
		"no summary":    "wrk: something went wrong\n",
	} {
		if _, err := parseWrk(out); err == nil {
			t.Errorf("%s: parseWrk accepted the run", name)
		}
	}
	clean := strings.Replace(wrkOK, "Requests/sec", "  Socket errors: connect 0, read 0, write 0, timeout 0\nRequests/sec", 1)
	if _, err := parseWrk(clean); err != nil {
		t.Errorf("a run without socket errors was refused: %v", err)
	}
}

func TestParseWrkDuration(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
	}{
		{"97.00us", 97 * time.Microsecond},
		{"1.23ms", 1230 * time.Microsecond},
		{"2.00s", 2 * time.Second},
	} {
		got, err := parseWrkDuration(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("parseWrkDuration(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
	if _, err := parseWrkDuration("3m"); err == nil {
		t.Error("an unknown unit was accepted")
	}
}

func TestParseGoBench(t *testing.T) {
	out := `goos: linux
BenchmarkMatch/regexp/rules=10-2         	 3386486	       354.0 ns/op	      48 B/op	       2 allocs/op
BenchmarkCookieSession/cache=hit-2       	  207206	      5825 ns/op	         6.110 x-anonymous-cost	        40.00 x-faster-than-off	    1888 B/op	      13 allocs/op
BenchmarkTunnelIdle 	       1	         0 ns/op	         5000 tunnels
PASS
`
	bs := parseGoBench(out)
	if len(bs) != 3 {
		t.Fatalf("parsed %d lines, want 3: %+v", len(bs), bs)
	}
	m, ok := findBench(bs, "BenchmarkMatch/regexp/rules=10")
	if !ok || m.NsPerOp != 354 || m.Metrics["allocs/op"] != 2 || m.Metrics["B/op"] != 48 {
		t.Errorf("BenchmarkMatch = %+v", m)
	}
	c, ok := findBench(bs, "BenchmarkCookieSession/cache=hit")
	if !ok || c.Metrics["x-anonymous-cost"] != 6.11 || c.Metrics["allocs/op"] != 13 {
		t.Errorf("BenchmarkCookieSession = %+v", c)
	}
	if i, ok := findBench(bs, "BenchmarkTunnelIdle"); !ok || i.Metrics["tunnels"] != 5000 {
		t.Errorf("BenchmarkTunnelIdle = %+v", i)
	}
}

func TestStatistics(t *testing.T) {
	if got := median([]float64{3, 1, 2}); got != 2 {
		t.Errorf("median odd = %v", got)
	}
	if got := median([]float64{4, 1, 2, 3}); got != 2.5 {
		t.Errorf("median even = %v", got)
	}
	if got := pct([]int64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, 50); got != 5 {
		t.Errorf("p50 = %v", got)
	}
	if got := pct([]int64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, 99); got != 10 {
		t.Errorf("p99 = %v", got)
	}
	r := ratioOf([]float64{10, 20, 30}, []float64{5, 0, 10})
	if len(r) != 2 || r[0] != 2 || r[1] != 3 {
		t.Errorf("ratioOf = %v, want [2 3] (a zero reference is skipped)", r)
	}
	row := row{ratio: []float64{0.9, 0.8, 1.1}, target: 0.85}
	if row.met() != "yes" || row.ratioText() != "0.90 (0.80–1.10)" {
		t.Errorf("met = %q, ratioText = %q", row.met(), row.ratioText())
	}
	row.inverse, row.target, row.absolute = true, 100, 120
	if row.met() != "no" {
		t.Errorf("an upper bound exceeded was met")
	}
}
