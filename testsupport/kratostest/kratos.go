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
//
// It is part of testsupport (the test harnesses): only tests and the bench
// harness import it.
package kratostest

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portcullis-proxy/portcullis/testsupport/proctest"
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

	run proctest.Restartable
}

// BinaryPath returns where the Kratos binary is expected: $PORTCULLIS_KRATOS_BIN
// if set, else <repo>/.build/bin/kratos.
func BinaryPath() string {
	if p := os.Getenv(EnvBinary); p != "" {
		return p
	}
	return filepath.Join(proctest.BinDir(), "kratos")
}

// Binary returns [BinaryPath] for a test that runs Kratos itself. A missing
// binary fails tb with the command that builds it (skips it under -short).
func Binary(tb testing.TB) string {
	tb.Helper()
	bin := BinaryPath()
	if err := checkBinary(bin); err != nil {
		handleStartError(tb, err)
	}
	return bin
}

// errMissingBinary is returned by [New] when the binary does not exist.
var errMissingBinary = errors.New("kratos binary missing")

func checkBinary(bin string) error {
	if st, err := os.Stat(bin); err != nil || st.IsDir() {
		return fmt.Errorf("%w: Ory Kratos binary not found at %s: run scripts/build-kratos.sh "+
			"(or set %s to a Kratos v1.3.1 binary built with -tags sqlite)", errMissingBinary, bin, EnvBinary)
	}
	return nil
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
	if err := checkBinary(bin); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "kratostest-")
	if err != nil {
		return nil, err
	}
	// The ports are free when picked but not held: another process of a
	// parallel test run may bind one before Kratos does. Kratos then exits
	// at once, and a start on new ports is tried (a bounded number of times).
	for attempt := 1; ; attempt++ {
		ports, err := proctest.Ports(2)
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
		err = k.Restart()
		if err == nil {
			return k, nil
		}
		k.Stop()
		var nr *proctest.NotReadyError
		if attempt < 3 && errors.As(err, &nr) && nr.Exited && portTaken(ports) {
			continue
		}
		os.RemoveAll(dir)
		return nil, err
	}
}

// portTaken reports whether any of ports is bound by someone else now.
func portTaken(ports []int) bool {
	for _, p := range ports {
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			return true
		}
		l.Close()
	}
	return false
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
func (k *Kratos) Stop() { k.run.Stop() }

// Restart stops Kratos if it runs and starts it again on the same ports and
// configuration, waiting until both APIs are ready. The database is in
// memory: identities and sessions created before a restart are gone after
// it.
func (k *Kratos) Restart() error {
	cmd := exec.Command(k.bin, "serve", "--dev", "--sqa-opt-out", "-c", k.cfgPath)
	cmd.Dir = k.dir
	cmd.Env = append(os.Environ(), "SQA_OPT_OUT=true", "LOG_LEVEL=warning")
	return k.run.Restart(cmd, proctest.Options{
		Name:    "kratos",
		Ready:   proctest.HTTPReady(k.adminURL+"/admin/health/ready", k.publicURL+"/health/ready"),
		Timeout: k.opts.StartTimeout,
		Output:  proctest.NewBuffer(64 << 10),
	})
}

// Running reports whether the process is up.
func (k *Kratos) Running() bool { return k.run.Running() }

// Output returns the tail of Kratos's log output (for failure messages).
func (k *Kratos) Output() string { return strings.TrimSpace(k.run.Output()) }

// Close stops Kratos and removes its files.
func (k *Kratos) Close() {
	k.Stop()
	os.RemoveAll(k.dir)
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
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
