//go:build unix

package soak

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// repoRoot is the module's top directory.
var repoRoot = func() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(filepath.Dir(filepath.Dir(file)))
}()

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// binary builds cmd/portcullis once per test process and returns its path.
func binary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "portcullis-soak-bin")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "portcullis")
		cmd := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "build", "-o", binPath, "./cmd/portcullis")
		cmd.Dir = repoRoot
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// freePort returns a loopback port nothing listens on at the moment.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// proc is a portcullis process started by a test.
type proc struct {
	cmd              *exec.Cmd
	proxy, api, prom string // host:port
	rulesFile        string
	out              *lockedBuffer
	done             chan struct{}
	exitErr          error
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startProxy writes the configuration (config is everything but the serve
// and access_rules blocks) and rules into a temporary directory and starts
// the built binary with them, waiting until its API answers. shutdown is
// serve.proxy.timeout.shutdown, the grace period SIGTERM gets.
func startProxy(t *testing.T, config, rules string, shutdown time.Duration) *proc {
	t.Helper()
	bin := binary(t)
	dir := t.TempDir()
	p := &proc{rulesFile: filepath.Join(dir, "access-rules.yml"), out: &lockedBuffer{}, done: make(chan struct{})}
	if err := os.WriteFile(p.rulesFile, []byte(rules), 0o600); err != nil {
		t.Fatal(err)
	}
	ports := [3]int{freePort(t), freePort(t), freePort(t)}
	p.proxy = fmt.Sprintf("127.0.0.1:%d", ports[0])
	p.api = fmt.Sprintf("127.0.0.1:%d", ports[1])
	p.prom = fmt.Sprintf("127.0.0.1:%d", ports[2])
	full := fmt.Sprintf("serve:\n  proxy: {host: 127.0.0.1, port: %d, timeout: {shutdown: %s}}\n  api: {host: 127.0.0.1, port: %d}\n  prometheus: {host: 127.0.0.1, port: %d}\naccess_rules:\n  poll_interval: 100ms\n  repositories: [\"file://%s\"]\n%s",
		ports[0], shutdown, ports[1], ports[2], p.rulesFile, config)
	cfgFile := filepath.Join(dir, "portcullis.yml")
	if err := os.WriteFile(cfgFile, []byte(full), 0o600); err != nil {
		t.Fatal(err)
	}
	p.cmd = exec.Command(bin, "serve", "-c", cfgFile)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.exitErr = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("portcullis output (last 4 KiB):\n%s", tail(p.out.String(), 4096))
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		res, err := http.Get("http://" + p.api + "/health/alive")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == 200 {
				return p
			}
		}
		select {
		case <-p.done:
			t.Fatalf("portcullis exited: %v\n%s", p.exitErr, p.out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("portcullis did not come up:\n%s", p.out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// signal sends sig to the process (only to it, by its pid).
func (p *proc) signal(t *testing.T, sig syscall.Signal) {
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
}

// metrics reads the process's Prometheus metrics and returns the sum of
// each named series' samples.
func (p *proc) metrics(t *testing.T, names ...string) map[string]float64 {
	t.Helper()
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}
	res, err := client.Get("http://" + p.prom + "/metrics")
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
