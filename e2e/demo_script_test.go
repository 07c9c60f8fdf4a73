package e2e

import (
	"errors"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// demoPorts are the loopback ports scripts/demo.sh listens on.
var demoPorts = []int{qsKratosPub, qsKratosAdmin, qsProxyPort, qsAPIPort, qsAppPort, qsMetricsPort}

// TestDemoScriptStartsAndStopsEverything runs scripts/demo.sh (what `make
// demo` runs) as a person would, waits for the URL it prints, checks that
// portcullis, the demo app and Kratos answer through the one origin, then
// sends SIGINT as Ctrl-C does and checks that the script exits and leaves
// none of its processes running and none of its ports bound.
func TestDemoScriptStartsAndStopsEverything(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts the whole demo")
	}
	kratosBinary(t)
	for _, p := range demoPorts {
		if portOpen(p) {
			t.Skipf("port %d on 127.0.0.1 is in use (a demo already running?); the demo needs its fixed ports", p)
		}
	}

	out := &syncBuffer{max: 256 << 10}
	cmd := exec.Command("bash", "scripts/demo.sh")
	cmd.Dir = repoRoot
	cmd.Stdout, cmd.Stderr = out, out
	// Its own process group, so the cleanup can end everything it started
	// should the script misbehave; SIGTERM (which it traps) if the test
	// binary dies.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	// A test run from a background job inherits SIGINT ignored, and a
	// shell cannot trap a signal ignored at its start. Handling SIGINT here
	// while the script starts gives it the default disposition, as in a
	// terminal.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt)
	err := cmd.Start()
	signal.Stop(sig)
	if err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	pgid := cmd.Process.Pid
	t.Cleanup(func() {
		_ = syscall.Kill(-pgid, syscall.SIGKILL) // no-op when all is gone
		if t.Failed() {
			t.Logf("--- demo.sh output ---\n%s", out)
		}
	})

	// The banner, after the builds and the readiness checks.
	deadline := time.Now().Add(8 * time.Minute)
	for !strings.Contains(out.String(), "portcullis demo is running: open  http://127.0.0.1:4455/") {
		select {
		case err := <-exited:
			t.Fatalf("demo.sh exited before it was ready: %v", err)
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("demo.sh did not print the URL in time")
		}
	}
	children := childPIDs(t, cmd.Process.Pid)
	if len(children) != 3 {
		t.Errorf("demo.sh runs %d processes %v, want 3 (Kratos, the demo app, portcullis)", len(children), children)
	}

	// A browser is sent to the login page, whose flow starts at Kratos
	// through portcullis.
	noFollow := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, step := range []struct{ url, wantPrefix string }{
		{"http://127.0.0.1:4455/", "http://127.0.0.1:4455/login?return_to="},
		{"http://127.0.0.1:4455/login", "/.ory/kratos/public/self-service/login/browser"},
		{"http://127.0.0.1:4455/.ory/kratos/public/self-service/login/browser", "http://127.0.0.1:4455/login?flow="},
	} {
		req, _ := http.NewRequest(http.MethodGet, step.url, nil)
		req.Header.Set("Accept", "text/html")
		res, err := noFollow.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", step.url, err)
		}
		res.Body.Close()
		if loc := res.Header.Get("Location"); !strings.HasPrefix(loc, step.wantPrefix) {
			t.Errorf("GET %s: %d Location %q, want a redirect to %s...", step.url, res.StatusCode, loc, step.wantPrefix)
		}
	}

	// Ctrl-C.
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 130 {
			t.Errorf("demo.sh ended with %v after SIGINT, want exit status 130", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("demo.sh did not exit within 30s of SIGINT")
	}
	if !strings.Contains(out.String(), "demo: stopped") {
		t.Errorf("demo.sh did not report stopping")
	}
	for _, pid := range children {
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("process %d (%s) is still running after the demo stopped", pid, procName(pid))
		}
	}
	for _, p := range demoPorts {
		if portOpen(p) {
			t.Errorf("port %d is still bound after the demo stopped", p)
		}
	}
}

// childPIDs lists a process's children (Linux /proc).
func childPIDs(t *testing.T, pid int) []int {
	t.Helper()
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/task/" + strconv.Itoa(pid) + "/children")
	if err != nil {
		t.Fatalf("listing the script's processes: %v", err)
	}
	var out []int
	for _, f := range strings.Fields(string(data)) {
		n, err := strconv.Atoi(f)
		if err == nil {
			out = append(out, n)
		}
	}
	return out
}

func procName(pid int) string {
	data, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	return strings.ReplaceAll(strings.TrimRight(string(data), "\x00"), "\x00", " ")
}

func portOpen(port int) bool {
	c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}
