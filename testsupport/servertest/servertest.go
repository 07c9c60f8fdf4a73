// Package servertest starts the whole portcullis server for a test, from a
// configuration and access rules written as a user writes them, and stops
// it when the test ends. By default the server runs in the test's process,
// assembled as `portcullis serve -c` assembles it (config.Load,
// app.NewLogger, app.New, Listen, Start), so a test can reach the
// [app.Server]; with [Config.Binary] it is the built cmd/portcullis in a
// child process, for what only a process shows (signals, exit status).
//
// Beside the server, it holds what whole-server tests share to drive it: a
// WebSocket client ([Server.DialTunnel], [Tunnel]), requests ([Fetch],
// [FetchLater]), an event-stream upstream ([EventStream]) and a shared
// configuration base ([KratosSessions], laid under a test's own with
// [Merge]).
//
// It is part of testsupport (the test harnesses): only tests import it.
package servertest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/portcullis-proxy/portcullis/config"
	"github.com/portcullis-proxy/portcullis/config/configtest"
	"github.com/portcullis-proxy/portcullis/internal/app"
	"github.com/portcullis-proxy/portcullis/testsupport/proctest"
)

// Config says what to serve. The zero value serves the default
// configuration with an empty rules file on loopback.
type Config struct {
	// YAML is the configuration file's text, written to a temporary file.
	// Without a top-level serve block, one binding the proxy, the API and
	// the metrics listener to 127.0.0.1 on free ports is appended; without
	// an access_rules block, one reading Rules from a file is prepended.
	YAML string
	// File is a configuration file served as it is written, instead of
	// YAML and Rules.
	File string
	// Rules is the access rules file's text, for the access_rules block
	// the helper adds.
	Rules string
	// PollInterval is the added block's access_rules.poll_interval (0:
	// the configuration's default).
	PollInterval time.Duration
	// Env are environment overrides (KEY=value), as `portcullis serve`
	// reads them from its environment; in this process they are the only
	// ones (the test's own environment is not read).
	Env []string
	// Binary runs the built cmd/portcullis ([Binary]) as a child process
	// instead of in this process; it inherits the test's environment, Env
	// added. A listener on port 0 is then moved to a port chosen free just
	// before the start (SERVE_<LISTENER>_PORT in the child's environment),
	// and the API must be plain HTTP.
	Binary bool
	// WaitReady waits (60s at most) until /health/ready answers 200: the
	// rules loaded and every readiness condition met. Otherwise Start
	// returns once the listeners accept.
	WaitReady bool
	// LogLimit keeps only the last LogLimit bytes of the log (0: all).
	LogLimit int
	// ShowLogOnFailure is how many bytes of the log's tail are logged when
	// the test failed (0: none).
	ShowLogOnFailure int
}

// Server is a running (or stopped) portcullis.
type Server struct {
	cfg       *config.Config
	cfgFile   string
	rulesFile string // "" when the configuration names its own
	addrs     map[string]string
	logs      *proctest.Buffer

	app  *app.Server       // in this process
	proc *proctest.Process // with Config.Binary

	stopOnce sync.Once
	stopped  chan struct{}
	stopErr  error
}

// listeners are the names app.Server.Addr knows, with the environment
// variable that moves each.
var listeners = []struct{ name, env string }{
	{"proxy", "SERVE_PROXY_PORT"},
	{"api", "SERVE_API_PORT"},
	{"prometheus", "SERVE_PROMETHEUS_PORT"},
	{"grpc", "SERVE_GRPC_PORT"},
}

// Start serves c for tb and stops the server when tb ends: a server in
// this process is shut down gracefully (within 10s; an error fails tb), a
// child process is killed. A configuration that does not load or a server
// that does not start fails tb.
func Start(tb testing.TB, c Config) *Server {
	tb.Helper()
	s := &Server{logs: proctest.NewBuffer(c.LogLimit), addrs: map[string]string{}, stopped: make(chan struct{})}
	s.cfgFile = c.File
	if c.File == "" {
		s.writeFiles(tb, c)
	} else if c.YAML != "" || c.Rules != "" {
		tb.Fatal("servertest: Config.File serves a file as written; YAML and Rules go without it")
	}
	tb.Cleanup(func() {
		s.cleanup(tb)
		if tb.Failed() && c.ShowLogOnFailure > 0 {
			tb.Logf("--- portcullis log ---\n%s", s.logs.Tail(c.ShowLogOnFailure))
		}
	})
	if c.Binary {
		s.startProcess(tb, c.Env)
	} else {
		s.startHere(tb, c.Env)
	}
	if c.WaitReady {
		s.waitReady(tb)
	}
	return s
}

// writeFiles writes the rules and the configuration of c into a temporary
// directory.
func (s *Server) writeFiles(tb testing.TB, c Config) {
	tb.Helper()
	dir := tb.TempDir()
	var top map[string]any
	if err := yaml.Unmarshal([]byte(c.YAML), &top); err != nil {
		tb.Fatalf("servertest: Config.YAML: %v", err)
	}
	text := c.YAML
	if _, ok := top["access_rules"]; ok {
		if c.Rules != "" {
			tb.Fatal("servertest: Config.YAML has an access_rules block of its own; Rules would not be read")
		}
	} else {
		s.rulesFile = filepath.Join(dir, "access-rules.yml")
		writeFile(tb, s.rulesFile, c.Rules)
		block := "access_rules:\n"
		if c.PollInterval > 0 {
			block += "  poll_interval: " + c.PollInterval.String() + "\n"
		}
		text = block + "  repositories: [" + strconv.Quote("file://"+s.rulesFile) + "]\n" + text
	}
	if _, ok := top["serve"]; !ok {
		text = strings.TrimRight(text, "\n") + "\nserve:\n" +
			"  proxy: {host: 127.0.0.1, port: 0}\n" +
			"  api: {host: 127.0.0.1, port: 0}\n" +
			"  prometheus: {host: 127.0.0.1, port: 0}\n"
	}
	s.cfgFile = filepath.Join(dir, "portcullis.yml")
	writeFile(tb, s.cfgFile, text)
}

func writeFile(tb testing.TB, path, content string) {
	tb.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		tb.Fatal(err)
	}
}

// startHere opens the server in this process, as `portcullis serve`
// does.
func (s *Server) startHere(tb testing.TB, env []string) {
	tb.Helper()
	srv, err := app.Open(s.cfgFile, env, s.logs)
	if err != nil {
		tb.Fatal(err)
	}
	s.app, s.cfg = srv, srv.Config
	for _, l := range listeners {
		if a := srv.Addr(l.name); a != "" {
			s.addrs[l.name] = reachable(a)
		}
	}
}

// startProcess runs the built binary on the configuration file, each
// listener on port 0 moved to a free port, and waits until its API is
// alive.
func (s *Server) startProcess(tb testing.TB, env []string) {
	tb.Helper()
	s.cfg = configtest.Load(tb, s.cfgFile, env...)
	bound := map[string]config.Listener{
		"proxy": s.cfg.Serve.Proxy.Listener, "api": s.cfg.Serve.API.Listener,
		"prometheus": s.cfg.Serve.Prometheus.Listener, "grpc": s.cfg.Serve.GRPC,
	}
	env = append(os.Environ(), env...)
	for _, l := range listeners {
		b := bound[l.name]
		if b.Port < 0 {
			continue
		}
		if b.Port == 0 {
			b.Port = proctest.FreePort(tb)
			env = append(env, l.env+"="+strconv.Itoa(b.Port))
		}
		s.addrs[l.name] = reachable(b.Addr())
	}
	cmd := exec.Command(Binary(tb), "serve", "-c", s.cfgFile)
	cmd.Env = env
	p, err := proctest.Launch(cmd, proctest.Options{
		Name:   "portcullis",
		Ready:  proctest.HTTPReady(s.APIURL() + "/health/alive"),
		Output: s.logs,
	})
	if err != nil {
		tb.Fatal(err)
	}
	s.proc = p
	go func() {
		<-p.Done()
		s.stopOnce.Do(func() { s.stopErr = p.Err(); close(s.stopped) })
	}()
}

// reachable turns a bound address into one a client dials: an unspecified
// host (all interfaces) becomes 127.0.0.1.
func reachable(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

func (s *Server) waitReady(tb testing.TB) {
	tb.Helper()
	ready := proctest.HTTPReady(s.APIURL() + "/health/ready")
	for deadline := time.Now().Add(60 * time.Second); !ready(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			tb.Fatalf("portcullis was not ready within 60s; its log:\n%s", s.logs.Tail(16<<10))
		}
	}
}

func (s *Server) cleanup(tb testing.TB) {
	if s.proc != nil {
		s.proc.Kill()
		return
	}
	if s.app == nil {
		return
	}
	select {
	case <-s.stopped:
		return
	default:
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Stop(ctx); err != nil {
		tb.Errorf("portcullis shutdown: %v", err)
	}
}

// App is the server running in this process (nil with Config.Binary).
func (s *Server) App() *app.Server { return s.app }

// Config is the configuration as the server loaded it at start.
func (s *Server) Config() *config.Config { return s.cfg }

// Addr is the host:port a client dials for a listener: "proxy", "api",
// "prometheus" or "grpc" ("" when it is off).
func (s *Server) Addr(listener string) string { return s.addrs[listener] }

// URL is the proxy's base URL (https when serve.proxy.tls is set).
func (s *Server) URL() string { return base(s.cfg.Serve.Proxy.TLS, s.Addr("proxy")) }

// WSURL is the proxy's base URL for WebSocket clients (ws or wss).
func (s *Server) WSURL() string { return "ws" + strings.TrimPrefix(s.URL(), "http") }

// APIURL is the API's base URL (https when serve.api.tls is set).
func (s *Server) APIURL() string { return base(s.cfg.Serve.API.TLS, s.Addr("api")) }

// DecisionsURL is the base URL of the decision API: a request to
// DecisionsURL()+path is decided as one to path.
func (s *Server) DecisionsURL() string { return s.APIURL() + "/decisions" }

// AdminURL is the base URL of the admin API (serve.api.admin).
func (s *Server) AdminURL() string { return s.APIURL() + "/admin" }

// MetricsURL is the Prometheus endpoint (serve.prometheus).
func (s *Server) MetricsURL() string {
	return "http://" + s.Addr("prometheus") + s.cfg.Serve.Prometheus.MetricsPath
}

func base(tls config.TLSConfig, addr string) string {
	if tls.Enabled() {
		return "https://" + addr
	}
	return "http://" + addr
}

// Logs returns the server's log so far: its log lines in this process, its
// whole output as a child process.
func (s *Server) Logs() string { return s.logs.String() }

// ConfigFile is the configuration file the server reads.
func (s *Server) ConfigFile() string { return s.cfgFile }

// ReplaceRules replaces the rules file in one step (written beside it, then
// renamed over it), so the server's poll never reads it half written.
func (s *Server) ReplaceRules(tb testing.TB, rules string) {
	tb.Helper()
	if s.rulesFile == "" {
		tb.Fatal("servertest: ReplaceRules: the configuration names its own rules")
	}
	ReplaceFile(tb, s.rulesFile, rules)
}

// ReplaceFile replaces the file at path (a rules file, a configuration, a
// policy file a handler polls) in one step: written beside it, then renamed
// over it, so a poll never reads it half written.
func ReplaceFile(tb testing.TB, path, content string) {
	tb.Helper()
	tmp := path + ".new"
	writeFile(tb, tmp, content)
	if err := os.Rename(tmp, path); err != nil {
		tb.Fatal(err)
	}
}

// Signal sends sig to the server's process (Config.Binary only).
func (s *Server) Signal(tb testing.TB, sig os.Signal) {
	tb.Helper()
	if s.proc == nil {
		tb.Fatal("servertest: Signal needs Config.Binary")
	}
	if err := s.proc.Signal(sig); err != nil {
		tb.Fatal(err)
	}
}

// Stop shuts the server down gracefully, within ctx: in this process
// [app.Server.Shutdown]; a child process gets SIGTERM and is killed when
// ctx ends first. It returns the shutdown's error (the process's exit
// status), and the same on every later call.
func (s *Server) Stop(ctx context.Context) error {
	if s.proc != nil {
		_ = s.proc.Signal(syscall.SIGTERM)
		select {
		case <-s.stopped:
		case <-ctx.Done():
			s.proc.Kill()
			<-s.stopped
		}
		return s.stopErr
	}
	s.stopOnce.Do(func() {
		s.stopErr = s.app.Shutdown(ctx)
		close(s.stopped)
	})
	return s.stopErr
}

// Done is closed once the server has stopped: after [Server.Stop], or
// when the child process exited.
func (s *Server) Done() <-chan struct{} { return s.stopped }

// Err waits until the server has stopped and returns how: the shutdown's
// error, or the process's exit status (nil for 0).
func (s *Server) Err() error {
	<-s.stopped
	return s.stopErr
}

var build struct {
	once sync.Once
	path string
	err  error
}

// Binary builds cmd/portcullis once per test process (CGO off) and returns
// the executable's path; a failed build fails tb.
func Binary(tb testing.TB) string {
	tb.Helper()
	build.once.Do(func() {
		dir, err := os.MkdirTemp("", "portcullis-bin-")
		if err != nil {
			build.err = err
			return
		}
		build.path = filepath.Join(dir, "portcullis")
		cmd := exec.Command("go", "build", "-o", build.path, "./cmd/portcullis")
		cmd.Dir = proctest.RepoRoot()
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			build.err = fmt.Errorf("go build ./cmd/portcullis: %v\n%s", err, out)
		}
	})
	if build.err != nil {
		tb.Fatal(build.err)
	}
	return build.path
}
