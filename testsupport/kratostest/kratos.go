// Package kratostest runs a real Ory Kratos for tests: an in-memory database
// (`dsn: memory`), the password method, a generated identity schema with an
// email trait, and free loopback ports for the public and admin APIs.
//
// The binary is the one scripts/build-kratos.sh builds into
// <repo>/.build/bin/kratos, or the file named by $PORTCULLIS_KRATOS_BIN. When
// it is missing, tests fail with a message saying how to build it; under
// `go test -short` they are skipped instead.
//
// One Kratos usually serves a whole package through [Shared]:
//
//	var kratos = &kratostest.Shared{}
//
//	func TestMain(m *testing.M) { kratostest.RunMain(m, kratos) }
//
//	func TestSomething(t *testing.T) {
//		k := kratos.Get(t)
//		id := k.RegisterAPI(t)
//		...
//	}
//
// Tests that stop Kratos or need a special session lifespan start their own
// instance with [Start].
package kratostest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// EnvBinary names the environment variable that overrides the Kratos binary.
const EnvBinary = "PORTCULLIS_KRATOS_BIN"

// SessionCookie is the name of the cookie Kratos sets for browser sessions.
const SessionCookie = "ory_kratos_session"

// Options configure a Kratos instance. The zero value is a usable default.
type Options struct {
	// SessionLifespan is Kratos's session.lifespan (default 1h).
	SessionLifespan time.Duration
	// StartTimeout bounds the wait for readiness (default 60s; the first
	// start after a build may be slow on a busy machine).
	StartTimeout time.Duration
}

// Kratos is a running (or stopped) Kratos process.
type Kratos struct {
	opts      Options
	bin       string
	dir       string
	cfgPath   string
	publicURL string
	adminURL  string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	log  *boundedBuffer
}

// BinaryPath returns where the Kratos binary is expected: $PORTCULLIS_KRATOS_BIN
// if set, else <repo>/.build/bin/kratos.
func BinaryPath() string {
	if p := os.Getenv(EnvBinary); p != "" {
		return p
	}
	return filepath.Join(repoRoot(), ".build", "bin", "kratos")
}

// repoRoot walks up from this source file to the directory holding go.mod.
func repoRoot() string {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "."
	}
	dir := filepath.Dir(file)
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "."
		}
		dir = parent
	}
}

// errMissingBinary is returned by [New] when the binary does not exist.
var errMissingBinary = errors.New("kratos binary missing")

func missingMessage(bin string) string {
	return fmt.Sprintf("Ory Kratos binary not found at %s: run scripts/build-kratos.sh "+
		"(or set %s to a Kratos v1.3.1 binary built with -tags sqlite)", bin, EnvBinary)
}

// Start starts a Kratos for one test and stops it when the test ends. It
// fails the test when the binary is missing (skips it under -short).
func Start(tb testing.TB, opts Options) *Kratos {
	tb.Helper()
	k, err := New(opts)
	if err != nil {
		handleStartError(tb, err)
	}
	tb.Cleanup(k.Close)
	return k
}

func handleStartError(tb testing.TB, err error) {
	tb.Helper()
	if errors.Is(err, errMissingBinary) && testing.Short() {
		tb.Skip(err.Error())
	}
	tb.Fatal(err.Error())
}

// New starts a Kratos and waits until it is ready. The caller must Close it.
func New(opts Options) (*Kratos, error) {
	if opts.SessionLifespan <= 0 {
		opts.SessionLifespan = time.Hour
	}
	if opts.StartTimeout <= 0 {
		opts.StartTimeout = 60 * time.Second
	}
	bin := BinaryPath()
	if st, err := os.Stat(bin); err != nil || st.IsDir() {
		return nil, fmt.Errorf("%w: %s", errMissingBinary, missingMessage(bin))
	}
	dir, err := os.MkdirTemp("", "kratostest-")
	if err != nil {
		return nil, err
	}
	ports, err := freePorts(2)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	k := &Kratos{
		opts:      opts,
		bin:       bin,
		dir:       dir,
		cfgPath:   filepath.Join(dir, "kratos.yml"),
		publicURL: fmt.Sprintf("http://127.0.0.1:%d", ports[0]),
		adminURL:  fmt.Sprintf("http://127.0.0.1:%d", ports[1]),
	}
	if err := k.writeConfig(ports[0], ports[1]); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	if err := k.Restart(); err != nil {
		k.Close()
		return nil, err
	}
	return k, nil
}

// PublicURL is the base URL of Kratos's public (frontend) API, without a
// trailing slash.
func (k *Kratos) PublicURL() string { return k.publicURL }

// AdminURL is the base URL of Kratos's admin API, without a trailing slash.
func (k *Kratos) AdminURL() string { return k.adminURL }

// WhoamiURL is the public /sessions/whoami endpoint, the usual
// check_session_url.
func (k *Kratos) WhoamiURL() string { return k.publicURL + "/sessions/whoami" }

// Stop kills the process and waits for it to exit. The ports stay reserved
// for this instance only by convention: a restart reuses them.
func (k *Kratos) Stop() {
	k.mu.Lock()
	cmd, done := k.cmd, k.done
	k.cmd, k.done = nil, nil
	k.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	<-done
}

// Restart stops Kratos if it runs and starts it again on the same ports and
// configuration. The database is in memory: identities and sessions created
// before a restart are gone after it.
func (k *Kratos) Restart() error {
	k.Stop()
	log := &boundedBuffer{max: 64 << 10}
	cmd := exec.Command(k.bin, "serve", "--dev", "--sqa-opt-out", "-c", k.cfgPath)
	cmd.Dir = k.dir
	cmd.Env = append(os.Environ(), "SQA_OPT_OUT=true", "LOG_LEVEL=warning")
	cmd.Stdout = log
	cmd.Stderr = log
	setProcAttr(cmd)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start kratos: %w", err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	k.mu.Lock()
	k.cmd, k.done, k.log = cmd, done, log
	k.mu.Unlock()

	ctx, cancel := context.WithTimeout(context.Background(), k.opts.StartTimeout)
	defer cancel()
	if err := k.waitReady(ctx, done); err != nil {
		k.Stop()
		return fmt.Errorf("kratos did not become ready: %w\n--- kratos output ---\n%s", err, log.String())
	}
	return nil
}

// waitReady polls both APIs' readiness endpoints.
func (k *Kratos) waitReady(ctx context.Context, exited <-chan struct{}) error {
	client := &http.Client{Timeout: 2 * time.Second}
	ready := func(u string) bool {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		res, err := client.Do(req)
		if err != nil {
			return false
		}
		res.Body.Close()
		return res.StatusCode == http.StatusOK
	}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		if ready(k.adminURL+"/admin/health/ready") && ready(k.publicURL+"/health/ready") {
			return nil
		}
		select {
		case <-exited:
			return errors.New("process exited")
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// Running reports whether the process is up.
func (k *Kratos) Running() bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.cmd != nil
}

// Output returns the tail of Kratos's log output (for failure messages).
func (k *Kratos) Output() string {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.log == nil {
		return ""
	}
	return k.log.String()
}

// Close stops Kratos and removes its files.
func (k *Kratos) Close() {
	k.Stop()
	os.RemoveAll(k.dir)
}

// freePorts reserves n distinct loopback ports by listening on port 0 and
// releasing them; Kratos binds them right after.
func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

// boundedBuffer keeps the last max bytes written (Kratos's log).
type boundedBuffer struct {
	mu  sync.Mutex
	max int
	buf bytes.Buffer
}

func (b *boundedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.Write(p)
	if over := b.buf.Len() - b.max; over > 0 {
		b.buf.Next(over)
	}
	return len(p), nil
}

func (b *boundedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.TrimSpace(b.buf.String())
}

// Shared is one Kratos started on first use and shared by a package's
// tests. Stop or restart it only in tests that do not run in parallel with
// others using it; prefer [Start] for such tests.
type Shared struct {
	// Options configure the instance; set them before the first Get.
	Options Options

	once sync.Once
	k    *Kratos
	err  error
}

// Get returns the shared Kratos, starting it on the first call. It fails tb
// when Kratos cannot start (skips under -short when the binary is missing).
func (s *Shared) Get(tb testing.TB) *Kratos {
	tb.Helper()
	s.once.Do(func() { s.k, s.err = New(s.Options) })
	if s.err != nil {
		handleStartError(tb, s.err)
	}
	return s.k
}

// Close stops the shared Kratos if it was started.
func (s *Shared) Close() {
	if s.k != nil {
		s.k.Close()
	}
}

// RunMain runs the package's tests and then stops the shared instances; it
// is meant to be the whole body of TestMain.
func RunMain(m *testing.M, shared ...*Shared) {
	code := m.Run()
	for _, s := range shared {
		s.Close()
	}
	os.Exit(code)
}
