//go:build unix

package soak

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/portcullis-proxy/portcullis/testsupport/servertest"
)

// startProxy starts the built binary with the configuration (config is
// everything but the serve and access_rules blocks) and the rules, polled
// every 100ms, waiting until its API answers. shutdown is
// serve.proxy.timeout.shutdown, the grace period SIGTERM gets.
func startProxy(t *testing.T, config, rules string, shutdown time.Duration) *servertest.Server {
	t.Helper()
	return servertest.Start(t, servertest.Config{
		Binary: true,
		YAML: fmt.Sprintf("serve:\n  proxy: {host: 127.0.0.1, port: 0, timeout: {shutdown: %s}}\n  api: {host: 127.0.0.1, port: 0}\n  prometheus: {host: 127.0.0.1, port: 0}\n%s",
			shutdown, config),
		Rules:            rules,
		PollInterval:     100 * time.Millisecond,
		ShowLogOnFailure: 4096,
	})
}

// metrics reads the process's Prometheus metrics and returns the sum of
// each named series' samples.
func metrics(t *testing.T, p *servertest.Server, names ...string) map[string]float64 {
	t.Helper()
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}
	res, err := client.Get(p.MetricsURL())
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	out := map[string]float64{}
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		name, rest, _ := strings.Cut(line, " ")
		if i := strings.IndexByte(name, '{'); i >= 0 {
			name = name[:i]
			rest = line[strings.LastIndexByte(line, ' ')+1:]
		}
		if !want[name] {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
		if err == nil {
			out[name] += v
		}
	}
	io.Copy(io.Discard, res.Body)
	return out
}

// raiseFileLimit lifts the soft limit on open files towards want, never
// above the hard limit nor 20,000.
func raiseFileLimit(t *testing.T, want uint64) uint64 {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	want = min(want, 20000, lim.Max)
	if lim.Cur < want {
		lim.Cur = want
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			t.Fatal(err)
		}
	}
	return lim.Cur
}
