package e2e

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/portcullis-proxy/portcullis/config"
	"github.com/portcullis-proxy/portcullis/contrib/demo-app/demoapp"
	"github.com/portcullis-proxy/portcullis/internal/app"
	"github.com/portcullis-proxy/portcullis/internal/registry"
)

// repoRoot is the repository's top directory (the one holding go.mod).
var repoRoot = func() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(filepath.Dir(file))
}()

// quickstartDir holds the shipped quickstart configuration.
var quickstartDir = filepath.Join(repoRoot, "contrib", "quickstart")

// The ports the shipped quickstart uses; the tests move each to a free one.
const (
	qsProxyPort   = 4455
	qsAPIPort     = 4456
	qsMetricsPort = 9000
	qsKratosPub   = 4433
	qsKratosAdmin = 4434
	qsAppPort     = 4457
)

// quickstartOptions change the shipped quickstart for a test.
type quickstartOptions struct {
	// MaxLifetime replaces the demo rule's websocket max_lifetime (60s),
	// so a test sees a tunnel end without waiting a minute.
	MaxLifetime time.Duration
	// RevalidateEvery replaces the demo rule's revalidate_every (15s).
	RevalidateEvery time.Duration
}

// quickstart is the native quickstart of contrib/quickstart, running for
// one test: Ory Kratos as a process with the shipped kratos.yml, the demo
// app and portcullis in this process with the shipped portcullis.yml and
// access-rules.yml. Only the ports (and the demo rule's max lifetime) are
// changed, so the test exercises the files users run.
type quickstart struct {
	// URL is the one origin browsers use: portcullis's proxy.
	URL string
	// APIURL is portcullis's API.
	APIURL string
	// KratosPublicURL and KratosAdminURL reach Kratos directly.
	KratosPublicURL string
	KratosAdminURL  string
	// dial, when set, makes the connections to URL (the compose stack
	// publishes its origin on another port); nil dials directly.
	dial func(ctx context.Context, network, addr string) (net.Conn, error)

	portcullisLog *syncBuffer
	appLog        *syncBuffer
	kratosLog     *syncBuffer
}

// startQuickstart starts the stack and stops it when the test ends. A
// missing Kratos binary fails the test (skips it under -short).
func startQuickstart(t *testing.T, opts quickstartOptions) *quickstart {
	t.Helper()
	kratosBin := kratosBinary(t)
	dir := t.TempDir()
	ports := freePorts(t, 5)
	proxyPort, apiPort, metricsPort, kratosPub, kratosAdmin := ports[0], ports[1], ports[2], ports[3], ports[4]
	appLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	appPort := appLn.Addr().(*net.TCPAddr).Port

	qs := &quickstart{
		URL:             fmt.Sprintf("http://127.0.0.1:%d", proxyPort),
		APIURL:          fmt.Sprintf("http://127.0.0.1:%d", apiPort),
		KratosPublicURL: fmt.Sprintf("http://127.0.0.1:%d", kratosPub),
		KratosAdminURL:  fmt.Sprintf("http://127.0.0.1:%d", kratosAdmin),
		portcullisLog:   &syncBuffer{max: 256 << 10},
		appLog:          &syncBuffer{max: 64 << 10},
		kratosLog:       &syncBuffer{max: 64 << 10},
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("--- portcullis log ---\n%s", qs.portcullisLog)
			t.Logf("--- demo app log ---\n%s", qs.appLog)
			t.Logf("--- kratos log ---\n%s", qs.kratosLog)
		}
	})

	host := func(p int) string { return "127.0.0.1:" + strconv.Itoa(p) }
	port := func(p int) string { return "port: " + strconv.Itoa(p) }
	rulesPath := filepath.Join(dir, "access-rules.yml")
	rewriteFile(t, "portcullis.yml", filepath.Join(dir, "portcullis.yml"), []replacement{
		{host(qsProxyPort), host(proxyPort)},
		{port(qsProxyPort), port(proxyPort)},
		{port(qsAPIPort), port(apiPort)},
		{port(qsMetricsPort), port(metricsPort)},
		{host(qsKratosPub), host(kratosPub)},
		{"file://contrib/quickstart/access-rules.yml", "file://" + rulesPath},
	})
	ruleChanges := []replacement{
		{host(qsProxyPort), host(proxyPort)},
		{host(qsKratosPub), host(kratosPub)},
		{host(qsAppPort), host(appPort)},
	}
	if opts.MaxLifetime > 0 {
		ruleChanges = append(ruleChanges, replacement{"max_lifetime: 60s", "max_lifetime: " + opts.MaxLifetime.String()})
	}
	if opts.RevalidateEvery > 0 {
		ruleChanges = append(ruleChanges, replacement{"revalidate_every: 15s", "revalidate_every: " + opts.RevalidateEvery.String()})
	}
	rewriteFile(t, "access-rules.yml", rulesPath, ruleChanges)
	kratosCfg := filepath.Join(dir, "kratos.yml")
	rewriteFile(t, "kratos.yml", kratosCfg, []replacement{
		{host(qsProxyPort), host(proxyPort)},
		{port(qsKratosPub), port(kratosPub)},
		{port(qsKratosAdmin), port(kratosAdmin)},
		{host(qsKratosAdmin), host(kratosAdmin)},
		{"file://contrib/quickstart/identity.schema.json", "file://" + filepath.Join(quickstartDir, "identity.schema.json")},
	})

	// Kratos, with the flags make demo uses.
	startProcess(t, qs.kratosLog, kratosBin, "serve", "--dev", "--sqa-opt-out", "-c", kratosCfg)
	waitReady(t, "Kratos", qs.kratosLog, qs.KratosPublicURL+"/health/ready", qs.KratosAdminURL+"/admin/health/ready")

	// The demo app.
	h, err := demoapp.New(demoapp.Config{
		KratosPublicURL:  qs.KratosPublicURL,
		PortcullisAPIURL: qs.APIURL,
		Rule:             "demo-echo",
		Log:              slog.New(slog.NewTextHandler(qs.appLog, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	appSrv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go appSrv.Serve(appLn)
	t.Cleanup(func() { appSrv.Close() })

	// portcullis, assembled as `portcullis serve -c portcullis.yml` does.
	cfg, err := config.Load(filepath.Join(dir, "portcullis.yml"), nil, registry.HandlerNames(registry.NewCatalog()))
	if err != nil {
		t.Fatalf("the quickstart's portcullis.yml does not load: %v", err)
	}
	log := logrus.New()
	log.Out = qs.portcullisLog
	log.SetLevel(logrus.DebugLevel)
	srv, err := app.New(cfg, log)
	if err != nil {
		t.Fatalf("portcullis does not start with the quickstart configuration: %v", err)
	}
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	srv.Start()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("portcullis shutdown: %v", err)
		}
	})
	waitReady(t, "portcullis", qs.portcullisLog, qs.APIURL+"/health/ready")
	return qs
}

// replacement is one change rewriteFile makes.
type replacement struct{ old, new string }

// rewriteFile copies a quickstart file with the replacements applied. A
// replacement whose text is no longer in the file fails the test: the
// quickstart changed and the test must follow.
func rewriteFile(t *testing.T, name, dst string, rs []replacement) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(quickstartDir, name))
	if err != nil {
		t.Fatal(err)
	}
	s := string(data)
	for _, r := range rs {
		if !strings.Contains(s, r.old) {
			t.Fatalf("contrib/quickstart/%s no longer contains %q; update the test's rewrite", name, r.old)
		}
		s = strings.ReplaceAll(s, r.old, r.new)
	}
	if err := os.WriteFile(dst, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
}

// startProcess runs a command for the rest of the test, its output in log.
// The kernel kills it if the test binary dies (see setProcAttr).
func startProcess(t *testing.T, log *syncBuffer, name string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = repoRoot
	cmd.Env = append(os.Environ(), "SQA_OPT_OUT=true")
	cmd.Stdout, cmd.Stderr = log, log
	setProcAttr(cmd)
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
	})
	return cmd
}

// waitReady polls the URLs until each answers 200 (60s at most: a first
// start on a busy machine is slow).
func waitReady(t *testing.T, what string, log *syncBuffer, urls ...string) {
	t.Helper()
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(60 * time.Second)
	for {
		ready := true
		for _, u := range urls {
			res, err := client.Get(u)
			if err != nil {
				ready = false
				break
			}
			res.Body.Close()
			if res.StatusCode != http.StatusOK {
				ready = false
				break
			}
		}
		if ready {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not become ready (%v); its log:\n%s", what, urls, log)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// freePorts reserves n loopback ports by binding port 0 and releasing them.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	out := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		out = append(out, l.Addr().(*net.TCPAddr).Port)
	}
	return out
}

// syncBuffer keeps the last max bytes written to it, for failure messages.
type syncBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.b = append(s.b, p...)
	if over := len(s.b) - s.max; s.max > 0 && over > 0 {
		s.b = append(s.b[:0], s.b[over:]...)
	}
	return len(p), nil
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return string(s.b)
}

// mustTool returns the path of a command-line tool the test needs. A
// missing tool fails the test with the install hint (skips it under -short).
func mustTool(t *testing.T, hint string, names ...string) string {
	t.Helper()
	for _, n := range names {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
	}
	msg := fmt.Sprintf("%s not found (looked for %s): %s", names[0], strings.Join(names, ", "), hint)
	if testing.Short() {
		t.Skip(msg)
	}
	t.Fatal(msg)
	return ""
}
