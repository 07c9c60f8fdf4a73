package e2e

import (
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/portcullis-proxy/portcullis/testsupport/kratostest"
	"github.com/portcullis-proxy/portcullis/testsupport/proctest"
)

// demoPorts are the loopback ports scripts/demo.sh listens on.
var demoPorts = []int{qsKratosPub, qsKratosAdmin, qsProxyPort, qsAPIPort, qsAppPort, qsMetricsPort}

// TestDemoScriptStartsAndStopsEverything runs scripts/demo.sh (what `make
// demo` runs) as a person would, waits for the URL it prints, checks that
// portcullis, the demo app and Kratos answer through the one origin, then
// checks /version names the build, sends SIGINT to the whole process group
// as Ctrl-C in a terminal does, and checks that the script exits 0 with one
// line and leaves none of its processes running and none of its ports
// bound.
func TestDemoScriptStartsAndStopsEverything(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts the whole demo")
	}
	kratostest.Binary(t)
	for _, p := range demoPorts {
		if portOpen(p) {
			t.Skipf("port %d on 127.0.0.1 is in use (a demo already running?); the demo needs its fixed ports", p)
		}
	}

	out := proctest.NewBuffer(256 << 10)
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
	// exited is closed when the script has ended, with waitErr set.
	exited := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(exited) }()
	pgid := cmd.Process.Pid
	t.Cleanup(func() {
		// SIGTERM first: the script stops the services it started (they
		// run in sessions of their own); SIGKILL if it does not exit.
		if syscall.Kill(-pgid, syscall.SIGTERM) == nil {
			select {
			case <-exited:
			case <-time.After(20 * time.Second):
			}
		}
		_ = syscall.Kill(-pgid, syscall.SIGKILL) // no-op when all is gone
		if t.Failed() {
			t.Logf("--- demo.sh output ---\n%s", out)
		}
	})

	// The banner, after the builds and the readiness checks.
	deadline := time.Now().Add(8 * time.Minute)
	for !strings.Contains(out.String(), "portcullis demo is running: open  http://127.0.0.1:4455/") {
		select {
		case <-exited:
			t.Fatalf("demo.sh exited before it was ready: %v", waitErr)
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("demo.sh did not print the URL in time")
		}
	}
	children := childPIDs(t, cmd.Process.Pid)
	// The services run in sessions of their own: end them too should the
	// script misbehave (no-op when all is gone).
	names := procNames(children)
	t.Cleanup(func() {
		for i, pid := range children {
			if procName(pid) == names[i] { // still the process started, not a reused pid
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	})
	services := 0
	for _, pid := range children {
		if !strings.HasPrefix(procName(pid), "tail ") {
			services++
		}
	}
	if services != 3 || len(children) != 4 {
		t.Errorf("demo.sh runs %v, want Kratos, the demo app, portcullis and the follower of portcullis's log", procNames(children))
	}

	// portcullis is built with the version `make build` stamps.
	want := "dev"
	if v, err := exec.Command("git", "-C", repoRoot, "describe", "--tags", "--always").Output(); err == nil {
		want = strings.TrimSpace(string(v))
	}
	var version struct{ Version string }
	if res, err := http.Get("http://127.0.0.1:4456/version"); err != nil {
		t.Errorf("GET /version: %v", err)
	} else {
		_ = json.NewDecoder(res.Body).Decode(&version)
		res.Body.Close()
		if version.Version != want || want == "dev" && repoIsGit() {
			t.Errorf("/version = %q, want %q (git describe)", version.Version, want)
		}
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

	// Ctrl-C, as a terminal sends it: SIGINT to every process of the
	// foreground process group at once, the script and all it started.
	// The log follower shows the requests above within about a second;
	// let it catch up, so that only what Ctrl-C causes comes after.
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end) && !strings.Contains(out.String(), "rule=kratos-public status=303"); {
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(1500 * time.Millisecond)
	before := len(out.String())
	if err := syscall.Kill(-pgid, syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
		if waitErr != nil {
			t.Errorf("demo.sh ended with %v after Ctrl-C, want exit status 0", waitErr)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("demo.sh did not exit within 30s of SIGINT")
	}
	// One line, and nothing else: no "exited unexpectedly", no service's
	// shutdown log on the terminal.
	after := strings.TrimSpace(out.String()[before:])
	if strings.Contains(after, "\n") || !strings.HasPrefix(after, "demo: stopped ") {
		t.Errorf("after Ctrl-C demo.sh printed %q, want one line \"demo: stopped ...\"", after)
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

func procNames(pids []int) []string {
	var out []string
	for _, p := range pids {
		out = append(out, procName(p))
	}
	return out
}

// repoIsGit reports whether the checkout has git metadata, in which case
// git describe always names a commit.
func repoIsGit() bool {
	_, err := os.Stat(filepath.Join(repoRoot, ".git"))
	return err == nil
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
