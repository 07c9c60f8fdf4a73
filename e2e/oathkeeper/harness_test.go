package oathkeeper

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/portcullis-proxy/portcullis/testsupport/proctest"
	"github.com/portcullis-proxy/portcullis/testsupport/servertest"
)

// oathkeeperBinary returns the Oathkeeper v0.40.9 binary, or skips the test
// with the command that builds it.
func oathkeeperBinary(t testing.TB) string {
	t.Helper()
	bin := os.Getenv("PORTCULLIS_OATHKEEPER_BIN")
	if bin == "" {
		bin = filepath.Join(proctest.BinDir(), "oathkeeper")
	}
	if _, err := os.Stat(bin); err != nil {
		t.Skipf("Ory Oathkeeper binary not found at %s: run scripts/build-oathkeeper.sh (make test-deps does) "+
			"or set PORTCULLIS_OATHKEEPER_BIN to an Oathkeeper v0.40.9 binary", bin)
	}
	return bin
}

// instance is one running product: its proxy and API base URLs.
type instance struct {
	name       string
	proxy, api string
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

// logOnFailure is how much of a product's log a failed test shows: the
// last 20,000 bytes with PORTCULLIS_DIFF_LOGS set, nothing otherwise (the
// logs are at debug level).
func logOnFailure() int {
	if os.Getenv("PORTCULLIS_DIFF_LOGS") != "" {
		return 20000
	}
	return 0
}

// startOathkeeper runs the Oathkeeper binary with the configuration cfg in
// dir and waits until it is ready; it is stopped when the test ends.
func startOathkeeper(t testing.TB, bin, dir, cfg string) *instance {
	t.Helper()
	ports := proctest.FreePorts(t, 3)
	path := filepath.Join(dir, "oathkeeper.yml")
	if err := os.WriteFile(path, []byte(configFor(cfg, ports)), 0o600); err != nil {
		t.Fatal(err)
	}
	inst := &instance{name: "oathkeeper",
		proxy: fmt.Sprintf("http://127.0.0.1:%d", ports[0]), api: fmt.Sprintf("http://127.0.0.1:%d", ports[1])}
	cmd := exec.Command(bin, "serve", "--sqa-opt-out", "-c", path)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "SQA_OPT_OUT=true")
	proctest.Start(t, cmd, syscall.SIGTERM, proctest.Options{
		Name:  "oathkeeper",
		Ready: proctest.HTTPReady(inst.api + "/health/ready"),
		Poll:  100 * time.Millisecond,
		// A generous bound: Oathkeeper starts in about a second, but the
		// machine running the suite may be loaded.
		Timeout:       time.Minute,
		Output:        proctest.NewBuffer(256 << 10),
		ShowOnFailure: logOnFailure(),
	})
	return inst
}

// startPortcullis runs portcullis in this process with the configuration
// cfg, its listeners on ports the system picks, and stops it when the test
// ends.
func startPortcullis(t testing.TB, cfg string) *instance {
	t.Helper()
	s := servertest.Start(t, servertest.Config{YAML: configFor(cfg, []int{0, 0, 0}), LogLimit: 256 << 10, ShowLogOnFailure: logOnFailure()})
	return &instance{name: "portcullis", proxy: s.URL(), api: s.APIURL()}
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
		return sortedParts(v)
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
		return sortedParts(v)
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

// sortedParts sorts the "; "-separated parts of a cookie header.
func sortedParts(v string) string {
	parts := strings.Split(v, "; ")
	sort.Strings(parts)
	return strings.Join(parts, "; ")
}
