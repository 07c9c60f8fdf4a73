package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// httpResult is one wrk run.
type httpResult struct {
	RPS      float64
	P50, P99 time.Duration
	Requests int64
	// CPU time per request of the process serving the URL and of the
	// upstream, measured by the harness around the run.
	ServerCPU, UpstreamCPU time.Duration
	// Spans is how many spans the collector received during the run (a
	// traced variant only).
	Spans int64
}

// wrkOptions are the load settings shared by every HTTP run.
type wrkOptions struct {
	Threads     int
	Connections int
	Duration    time.Duration
}

// ensureWrk makes sure Debian's wrk is installed, installing it with
// apt-get when missing and allowed.
func ensureWrk(install bool) error {
	if _, err := exec.LookPath("wrk"); err == nil {
		return nil
	}
	if !install {
		return fmt.Errorf("wrk is not installed (apt-get install wrk), or run with -install")
	}
	fmt.Fprintln(os.Stderr, "bench: installing wrk with apt-get")
	for _, args := range [][]string{{"update", "-qq"}, {"install", "-y", "-qq", "wrk"}} {
		cmd := exec.Command("apt-get", args...)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if os.Geteuid() != 0 {
			cmd = exec.Command("sudo", append([]string{"apt-get"}, args...)...)
			cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		}
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("apt-get %s: %w", strings.Join(args, " "), err)
		}
	}
	_, err := exec.LookPath("wrk")
	return err
}

// runWrk loads url for o.Duration and parses wrk's summary. Any non-2xx
// answer or socket error fails the run: a figure is only valid when every
// request was answered as intended.
func runWrk(ctx context.Context, o wrkOptions, url string, headers map[string]string) (httpResult, error) {
	args := []string{
		"-t", strconv.Itoa(o.Threads), "-c", strconv.Itoa(o.Connections),
		"-d", fmt.Sprintf("%ds", int(o.Duration.Seconds())), "--latency", "--timeout", "5s",
	}
	for k, v := range headers {
		args = append(args, "-H", k+": "+v)
	}
	args = append(args, url)
	ctx, cancel := context.WithTimeout(ctx, o.Duration+30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "wrk", args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return httpResult{}, fmt.Errorf("wrk %s: %v: %s", url, err, errb.String())
	}
	return parseWrk(out.String())
}

// parseWrk reads Requests/sec, the 50% and 99% latency lines, the request
// count and the error lines of wrk's --latency output.
func parseWrk(s string) (httpResult, error) {
	var r httpResult
	inDist := false
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		f := strings.Fields(line)
		switch {
		case strings.HasPrefix(line, "Latency Distribution"):
			inDist = true
		case inDist && len(f) == 2 && strings.HasSuffix(f[0], "%"):
			d, err := parseWrkDuration(f[1])
			if err != nil {
				return r, err
			}
			switch f[0] {
			case "50%":
				r.P50 = d
			case "99%":
				r.P99 = d
			}
		case strings.HasPrefix(line, "Requests/sec:") && len(f) == 2:
			r.RPS, _ = strconv.ParseFloat(f[1], 64)
		case len(f) >= 3 && f[1] == "requests" && f[2] == "in":
			r.Requests, _ = strconv.ParseInt(f[0], 10, 64)
			inDist = false
		case strings.HasPrefix(line, "Non-2xx or 3xx responses:"):
			return r, fmt.Errorf("wrk: %s", line)
		case strings.HasPrefix(line, "Socket errors:"):
			// Connect/read/write errors invalidate the run; timeouts too.
			if !strings.Contains(line, "connect 0, read 0, write 0, timeout 0") {
				return r, fmt.Errorf("wrk: %s", line)
			}
		}
	}
	if r.RPS == 0 || r.P50 == 0 {
		return r, fmt.Errorf("wrk: unreadable output:\n%s", s)
	}
	return r, nil
}

// parseWrkDuration reads wrk's "123.45us", "1.20ms", "2.00s".
func parseWrkDuration(s string) (time.Duration, error) {
	for _, u := range []struct {
		suffix string
		unit   float64
	}{{"us", 1e3}, {"ms", 1e6}, {"s", 1e9}} {
		if v, ok := strings.CutSuffix(s, u.suffix); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return 0, err
			}
			return time.Duration(f * u.unit), nil
		}
	}
	return 0, fmt.Errorf("wrk: unknown duration %q", s)
}
