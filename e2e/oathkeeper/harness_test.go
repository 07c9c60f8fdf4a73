package oathkeeper

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/portcullis-proxy/portcullis/config"
	"github.com/portcullis-proxy/portcullis/internal/app"
	"github.com/portcullis-proxy/portcullis/internal/registry"
)

// repoRoot is the repository's top directory (the one holding go.mod).
var repoRoot = func() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(filepath.Dir(filepath.Dir(file)))
}()

// oathkeeperBinary returns the Oathkeeper v0.40.9 binary, or skips the test
// with the command that builds it.
func oathkeeperBinary(t testing.TB) string {
	t.Helper()
	bin := os.Getenv("PORTCULLIS_OATHKEEPER_BIN")
	if bin == "" {
		bin = filepath.Join(repoRoot, ".build", "bin", "oathkeeper")
	}
	if _, err := os.Stat(bin); err != nil {
		t.Skipf("Ory Oathkeeper binary not found at %s: run scripts/build-oathkeeper.sh (make test-deps does) "+
			"or set PORTCULLIS_OATHKEEPER_BIN to an Oathkeeper v0.40.9 binary", bin)
	}
	return bin
}

// syncBuffer is a goroutine-safe log sink, bounded to its last 256 KiB.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.buf.Len() > 256<<10 {
		b := s.buf.Bytes()
		keep := append([]byte(nil), b[len(b)-128<<10:]...)
		s.buf.Reset()
		s.buf.Write(keep)
	}
	return s.buf.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

// freePorts reserves n loopback ports by binding port 0 and releasing them.
func freePorts(t testing.TB, n int) []int {
	t.Helper()
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
			t.Fatal(err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports
}

// instance is one running product: its proxy and API base URLs.
type instance struct {
	name       string
	proxy, api string
	log        *syncBuffer
}

// configFor renders the shared configuration template for one product's
// ports. The template names the ports {{PROXY}}, {{API}} and {{METRICS}}.
func configFor(tmpl string, ports []int) string {
	return strings.NewReplacer(
		"{{PROXY}}", fmt.Sprint(ports[0]),
		"{{API}}", fmt.Sprint(ports[1]),
		"{{METRICS}}", fmt.Sprint(ports[2]),
	).Replace(tmpl)
}

// startOathkeeper runs the Oathkeeper binary with the configuration cfg in
// dir and waits until it is ready; it is stopped when the test ends.
func startOathkeeper(t testing.TB, bin, dir, cfg string) *instance {
	t.Helper()
	ports := freePorts(t, 3)
	path := filepath.Join(dir, "oathkeeper.yml")
	if err := os.WriteFile(path, []byte(configFor(cfg, ports)), 0o600); err != nil {
		t.Fatal(err)
	}
	log := &syncBuffer{}
	cmd := exec.Command(bin, "serve", "--sqa-opt-out", "-c", path)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "SQA_OPT_OUT=true")
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() && os.Getenv("PORTCULLIS_DIFF_LOGS") != "" {
			t.Logf("--- oathkeeper log (tail) ---\n%s", tail(log.String(), 20000))
		}
	})
	inst := &instance{name: "oathkeeper", log: log,
		proxy: fmt.Sprintf("http://127.0.0.1:%d", ports[0]), api: fmt.Sprintf("http://127.0.0.1:%d", ports[1])}
	// A generous bound: Oathkeeper starts in about a second, but the
	// machine running the suite may be loaded.
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		select {
		case <-done:
			t.Fatalf("oathkeeper exited:\n%s", tail(log.String(), 4000))
		default:
		}
		if res, err := http.Get(inst.api + "/health/ready"); err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return inst
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("oathkeeper not ready within a minute:\n%s", tail(log.String(), 4000))
	return nil
}

// startPortcullis runs portcullis in this process with the configuration
// cfg (written to dir, as a user would) and stops it when the test ends.
func startPortcullis(t testing.TB, dir, cfg string) *instance {
	t.Helper()
	ports := freePorts(t, 3)
	path := filepath.Join(dir, "portcullis.yml")
	if err := os.WriteFile(path, []byte(configFor(cfg, ports)), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := config.Load(path, nil, registry.HandlerNames(registry.NewCatalog()))
	if err != nil {
		t.Fatal(err)
	}
	logger, err := app.NewLogger(c.Log)
	if err != nil {
		t.Fatal(err)
	}
	log := &syncBuffer{}
	logger.Out = log
	srv, err := app.New(c, logger)
	if err != nil {
		t.Fatal(err)
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
		if t.Failed() && os.Getenv("PORTCULLIS_DIFF_LOGS") != "" {
			t.Logf("--- portcullis log (tail) ---\n%s", tail(log.String(), 20000))
		}
	})
	return &instance{name: "portcullis", log: log,
		proxy: "http://" + srv.Addr("proxy"), api: "http://" + srv.Addr("api")}
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// outcome is what a product answered, reduced to what the comparison
// looks at.
type outcome struct {
	Status  int               `json:"status"`
	Headers map[string]string `json:"headers,omitempty"`
	// Body is the JSON body reduced by reduceBody, or the raw text when it
	// is not JSON (compared only when the case asks for it).
	Body any `json:"body,omitempty"`
	// Err is a transport or framing error (a body shorter than its
	// Content-Length, say).
	Err string `json:"err,omitempty"`
}

func (o outcome) String() string {
	b, _ := json.Marshal(o)
	return string(b)
}

// client never follows redirects: the Location is part of the answer.
var client = &http.Client{
	Timeout:       30 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	Transport:     &http.Transport{DisableKeepAlives: true},
}

// do sends c to inst and reduces the answer.
func do(t testing.TB, inst *instance, c testCase, env *environment) outcome {
	t.Helper()
	base := inst.proxy
	if c.via == viaDecisions {
		base = inst.api + "/decisions"
	}
	var body io.Reader
	if c.body != "" {
		body = strings.NewReader(c.body)
	}
	method := c.method
	if method == "" {
		method = http.MethodGet
	}
	req, err := http.NewRequest(method, base+c.path, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range c.header {
		req.Header.Set(k, env.expand(v))
	}
	if c.host != "" {
		req.Host = c.host
	}
	res, err := client.Do(req)
	if err != nil {
		return outcome{Err: "request: " + err.Error()}
	}
	defer res.Body.Close()
	raw, rerr := io.ReadAll(res.Body)
	o := outcome{Status: res.StatusCode, Headers: map[string]string{}}
	if rerr != nil {
		o.Err = "body: " + rerr.Error()
	}
	for _, h := range append([]string{"Content-Type"}, c.headers...) {
		if v := res.Header.Values(h); len(v) > 0 {
			o.Headers[h] = normalizeHeader(h, strings.Join(v, ", "), env)
		}
	}
	// A signed token in an answer's header compares by its claims.
	if v := o.Headers["Authorization"]; strings.Count(v, ".") == 2 {
		b, _ := json.Marshal(normalizeCarried("Authorization", v, env))
		o.Headers["Authorization"] = string(b)
	}
	o.Body = reduceBody(raw, c, env)
	// Each product's own address (a Host preserved upstream, a capture
	// group of the host, a redirect's return_to) is the same place.
	proxyHP, apiHP := strings.TrimPrefix(inst.proxy, "http://"), strings.TrimPrefix(inst.api, "http://")
	self := strings.NewReplacer(proxyHP, "SELF", apiHP, "SELF",
		url.QueryEscape(proxyHP), "SELF", url.QueryEscape(apiHP), "SELF")
	for k, v := range o.Headers {
		o.Headers[k] = self.Replace(v)
	}
	o.Body = replaceStrings(o.Body, self)
	return o
}

// replaceStrings applies r to every string inside v.
func replaceStrings(v any, r *strings.Replacer) any {
	switch t := v.(type) {
	case string:
		return r.Replace(t)
	case map[string]any:
		for k, x := range t {
			t[k] = replaceStrings(x, r)
		}
	case []any:
		for i, x := range t {
			t[i] = replaceStrings(x, r)
		}
	}
	return v
}

// normalizeHeader makes values that legitimately vary between two runs
// comparable: a signed token becomes its claims without times and ids.
func normalizeHeader(name, v string, env *environment) string {
	if strings.EqualFold(name, "Set-Cookie") {
		// Attribute order is not part of the contract.
		parts := strings.Split(v, "; ")
		sort.Strings(parts)
		return strings.Join(parts, "; ")
	}
	return v
}

// reduceBody reduces a JSON body to what both products must agree on: an
// error's code and status (the message texts are not a contract), and for
// the echo upstream the method, path, query and the request headers the
// case names. Non-JSON bodies are compared only when the case asks.
func reduceBody(raw []byte, c testCase, env *environment) any {
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		if c.compareText {
			return strings.TrimSpace(string(raw))
		}
		return nil
	}
	if e, ok := doc["error"].(map[string]any); ok {
		return map[string]any{"error": map[string]any{"code": e["code"], "status": e["status"]}}
	}
	if _, ok := doc["echo"]; ok {
		out := map[string]any{"method": doc["method"], "path": doc["path"], "query": doc["query"]}
		hs, _ := doc["headers"].(map[string]any)
		for _, h := range c.upstream {
			v, _ := hs[http.CanonicalHeaderKey(h)].(string)
			out[h] = normalizeCarried(h, v, env)
		}
		return out
	}
	return doc
}

// normalizeCarried turns an id_token in a carried header into its claims
// without the ones that differ on every issue (iat, exp, nbf, jti), and
// sorts a Cookie header's cookies.
func normalizeCarried(name, v string, env *environment) any {
	if strings.EqualFold(name, "Cookie") {
		// Oathkeeper's cookie mutator writes its cookies in map order.
		parts := strings.Split(v, "; ")
		sort.Strings(parts)
		return strings.Join(parts, "; ")
	}
	tok := strings.TrimPrefix(v, "Bearer ")
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return v
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return v
	}
	var claims map[string]any
	if err := json.Unmarshal(payload, &claims); err != nil {
		return v
	}
	for _, k := range []string{"iat", "exp", "nbf", "jti"} {
		if _, ok := claims[k]; ok {
			claims[k] = "(set)"
		}
	}
	return claims
}
