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
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-proxy/portcullis/contrib/demo-app/demoapp"
	"github.com/portcullis-proxy/portcullis/testsupport/kratostest"
	"github.com/portcullis-proxy/portcullis/testsupport/proctest"
	"github.com/portcullis-proxy/portcullis/testsupport/servertest"
)

// repoRoot is the repository's top directory (the one holding go.mod).
var repoRoot = proctest.RepoRoot()

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
	// ClockLifetime replaces the demo clock rule's max_lifetime (20s), so a
	// test sees its event stream end.
	ClockLifetime time.Duration
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
}

// startQuickstart starts the stack and stops it when the test ends. A
// missing Kratos binary fails the test (skips it under -short).
func startQuickstart(t *testing.T, opts quickstartOptions) *quickstart {
	t.Helper()
	kratosBin := kratostest.Binary(t)
	dir := t.TempDir()
	ports := proctest.FreePorts(t, 5)
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
	}
	appLog := proctest.NewBuffer(64 << 10)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("--- demo app log ---\n%s", appLog)
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
	if opts.ClockLifetime > 0 {
		ruleChanges = append(ruleChanges, replacement{"max_lifetime: 20s", "max_lifetime: " + opts.ClockLifetime.String()})
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
	startKratos(t, exec.Command(kratosBin, "serve", "--dev", "--sqa-opt-out", "-c", kratosCfg),
		qs.KratosPublicURL+"/health/ready", qs.KratosAdminURL+"/admin/health/ready")

	// The demo app.
	h, err := demoapp.New(demoapp.Config{
		KratosPublicURL:  qs.KratosPublicURL,
		PortcullisAPIURL: qs.APIURL,
		Rule:             "demo-echo",
		Log:              slog.New(slog.NewTextHandler(appLog, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	appSrv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go appSrv.Serve(appLn)
	t.Cleanup(func() { appSrv.Close() })

	// portcullis, assembled as `portcullis serve -c portcullis.yml` does.
	servertest.Start(t, servertest.Config{
		File: filepath.Join(dir, "portcullis.yml"), Env: []string{"LOG_LEVEL=debug"},
		WaitReady: true, LogLimit: 256 << 10, ShowLogOnFailure: 256 << 10,
	})
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
	pairs := make([]string, 0, 2*len(rs))
	for _, r := range rs {
		if !strings.Contains(s, r.old) {
			t.Fatalf("contrib/quickstart/%s no longer contains %q; update the test's rewrite", name, r.old)
		}
		pairs = append(pairs, r.old, r.new)
	}
	// One pass: a replacement's result is never rewritten again (a picked
	// port 44335 must not become Kratos's port by the 4433 replacement).
	s = strings.NewReplacer(pairs...).Replace(s)
	if err := os.WriteFile(dst, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
}

// startKratos runs Kratos (cmd) for the rest of the test, from the
// repository's root, and waits (60s at most: a first start on a busy
// machine is slow) until each of ready answers 200. Its log is shown if the
// test fails.
func startKratos(t *testing.T, cmd *exec.Cmd, ready ...string) {
	t.Helper()
	cmd.Dir = repoRoot
	cmd.Env = append(append(os.Environ(), "SQA_OPT_OUT=true"), cmd.Env...)
	proctest.Start(t, cmd, os.Kill, proctest.Options{
		Name: "kratos", Ready: proctest.HTTPReady(ready...), Poll: 100 * time.Millisecond, Timeout: time.Minute,
		Output: proctest.NewBuffer(64 << 10), ShowOnFailure: 64 << 10,
	})
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
