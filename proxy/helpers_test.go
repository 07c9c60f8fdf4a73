package proxy_test

// The setup the package's tests share: rule sets compiled with every
// handler enabled, the front ends built over them and started on loopback,
// the real upstreams they forward to, the clients that call them, and the
// hot-path benchmark's fixtures.

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/sirupsen/logrus"

	"github.com/portcullis-proxy/portcullis/internal/fetch"
	"github.com/portcullis-proxy/portcullis/internal/logfmt"
	"github.com/portcullis-proxy/portcullis/internal/registry"
	"github.com/portcullis-proxy/portcullis/pipeline"
	"github.com/portcullis-proxy/portcullis/proxy"
	"github.com/portcullis-proxy/portcullis/rules"
	"github.com/portcullis-proxy/portcullis/testsupport/handlertest"
	"github.com/portcullis-proxy/portcullis/testsupport/handlertest/ruleset"
)

// globalConfigs are handler global configs as in an oathkeeper.yml.
var globalConfigs = map[string]string{
	"header": `{"headers":{"X-User":"{{ print .Subject }}"}}`,
}

// ruleSet compiles an access-rules document with every foundation handler
// enabled.
func ruleSet(t testing.TB, doc string) *rules.Set {
	t.Helper()
	cat := registry.NewCatalog()
	deps := pipeline.Deps{Context: context.Background(), HTTPClient: fetch.NewClient(fetch.ClientOptions{})}
	for _, h := range cat.Handlers() {
		_ = cat.Enable(h.Kind(), h.Name(), json.RawMessage(globalConfigs[h.Name()]), deps)
	}
	return ruleset.Compile(t, cat, doc)
}

// publicRule allows GET and POST under /public/ for anyone, setting X-User;
// adminRule denies /admin and below. UPSTREAM stands for the upstream's URL.
var (
	publicRule = handlertest.Rule{ID: "public", URL: "http://<[^/]+>/public/<.*>", Methods: []string{"GET", "POST"}, Mutators: []string{"header"}, Upstream: "UPSTREAM"}.YAML()
	adminRule  = handlertest.Rule{ID: "admin", URL: "http://<[^/]+>/admin<.*>", Authorizer: "deny", Upstream: "UPSTREAM"}.YAML()
)

// namedRule allows anyone to GET url (forwarded to upstream, if not ""),
// and names itself in the X-Rule header, so that a 200 says which rule
// approved.
func namedRule(id, url, upstream string) handlertest.Rule {
	return handlertest.Rule{ID: id, URL: url, Mutators: []string{"header: {headers: {X-Rule: " + id + "}}"}, Upstream: upstream}
}

// withUpstream is doc with UPSTREAM replaced by u.
func withUpstream(doc, u string) string { return strings.ReplaceAll(doc, "UPSTREAM", u) }

// over is the decision options of a front end serving set, every other
// option at its default.
func over(set *rules.Set) proxy.DecisionOptions {
	return proxy.DecisionOptions{Rules: ruleset.Static{Set: set}}
}

// logged is over(set) with the request log going to l.
func logged(set *rules.Set, l logrus.FieldLogger) proxy.DecisionOptions {
	o := over(set)
	o.Log = l
	return o
}

// serve starts h on loopback until the test ends.
func serve(tb testing.TB, h http.Handler) *httptest.Server {
	srv := httptest.NewServer(h)
	tb.Cleanup(srv.Close)
	return srv
}

// serveProxy starts the proxy handler over set on loopback.
func serveProxy(tb testing.TB, set *rules.Set) *httptest.Server {
	return serve(tb, proxy.NewHandler(proxy.HandlerOptions{DecisionOptions: over(set)}))
}

// serveAPI starts the API over set on loopback.
func serveAPI(tb testing.TB, set *rules.Set) *httptest.Server {
	return serve(tb, proxy.NewAPI(proxy.APIOptions{DecisionOptions: over(set)}))
}

// seen is what the upstream echo server reports about the request it got.
type seen struct {
	Method  string      `json:"method"`
	Path    string      `json:"path"`
	RawPath string      `json:"raw_path"`
	Query   string      `json:"query"`
	Host    string      `json:"host"`
	Header  http.Header `json:"header"`
	Body    string      `json:"body"`
}

// echoUpstream is a real HTTP server on loopback that answers with what it
// received.
func echoUpstream(t testing.TB) *httptest.Server {
	return serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Upstream", "yes")
		json.NewEncoder(w).Encode(seen{r.Method, r.URL.Path, r.URL.RawPath, r.URL.RawQuery, r.Host, r.Header, string(body)})
	}))
}

func decodeSeen(t testing.TB, res *http.Response) seen {
	t.Helper()
	defer res.Body.Close()
	if res.Header.Get("X-Upstream") != "yes" {
		b, _ := io.ReadAll(res.Body)
		t.Fatalf("response did not come from the upstream: %d %s", res.StatusCode, b)
	}
	var s seen
	if err := json.NewDecoder(res.Body).Decode(&s); err != nil {
		t.Fatal(err)
	}
	return s
}

func decodeError(t testing.TB, res *http.Response) pipeline.ErrorBody {
	t.Helper()
	defer res.Body.Close()
	if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("error Content-Type = %q, want JSON", ct)
	}
	var b pipeline.ErrorBody
	if err := json.NewDecoder(res.Body).Decode(&b); err != nil {
		t.Fatalf("error body is not JSON: %v", err)
	}
	if b.Error.Code != res.StatusCode {
		t.Errorf("error body code %d != status %d", b.Error.Code, res.StatusCode)
	}
	return b
}

// noFollow is a client that returns redirects instead of following them.
var noFollow = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// send sends method u with header h (redirects not followed) and returns
// the response, its body unread.
func send(t testing.TB, method, u string, h http.Header) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range h {
		req.Header[k] = vs
	}
	res, err := noFollow.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// get is send with the body read and closed.
func get(t testing.TB, method, u string, header http.Header) (*http.Response, string) {
	t.Helper()
	res := send(t, method, u, header)
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res, string(b)
}

// getJSON GETs u, decodes the answer into v unless v is nil, and returns
// the status.
func getJSON(t testing.TB, u string, v any) int {
	t.Helper()
	res := send(t, http.MethodGet, u, nil)
	defer res.Body.Close()
	if v != nil {
		if err := json.NewDecoder(res.Body).Decode(v); err != nil {
			t.Fatalf("GET %s: %v", u, err)
		}
	}
	return res.StatusCode
}

// lockedBuffer is a log sink safe for the server's goroutines.
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

// Reset empties the buffer.
func (l *lockedBuffer) Reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.b.Reset()
}

// logTo is a logger at info level writing text lines to out.
func logTo(out io.Writer) *logrus.Logger {
	l := logrus.New()
	l.Out = out
	return l
}

// benchRule is the hot path's rule: anonymous → allow → header.
var benchRule = anonRule.YAML()

// anonRule lets anyone GET /anon/... through to UPSTREAM, naming the
// subject.
var anonRule = handlertest.Rule{ID: "anon", URL: "http://<[^/]+>/anon/<.*>", Mutators: []string{"header"}, Upstream: "UPSTREAM"}

// benchLogger logs as the server does by default (text, info), into
// nothing.
func benchLogger() *logrus.Logger {
	l := logTo(io.Discard)
	l.SetFormatter(&logfmt.Text{})
	l.SetLevel(logrus.InfoLevel)
	return l
}

// discardWriter is a ResponseWriter that keeps only its header map and
// status, reset between requests.
type discardWriter struct {
	h    http.Header
	code int
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *discardWriter) WriteHeader(code int)        { w.code = code }

func (w *discardWriter) reset() {
	clear(w.h)
	w.code = 0
}

// helloUpstream is the hot path's upstream: a real server on loopback
// answering a short text.
func helloUpstream(tb testing.TB) *httptest.Server {
	return serve(tb, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, "hello from the upstream\n")
	}))
}

// httputilReference is a bare httputil.ReverseProxy to up on its own
// transport: the line the proxy's hot-path benchmarks are read against.
func httputilReference(up *httptest.Server) http.Handler {
	target, _ := url.Parse(up.URL)
	return &httputil.ReverseProxy{
		Rewrite:   func(pr *httputil.ProxyRequest) { pr.SetURL(target); pr.SetXForwarded() },
		Transport: proxy.NewTransport(),
	}
}

// benchHotPath runs, for each name in order, GET /anon/items/42 through
// handlers[name] in a sub-benchmark, and fails one whose answer did not
// come from the upstream.
func benchHotPath(b *testing.B, handlers map[string]http.Handler, names ...string) {
	for _, name := range names {
		h := handlers[name]
		b.Run(name, func(b *testing.B) {
			r := httptest.NewRequest(http.MethodGet, "http://app.example/anon/items/42", nil)
			r.RemoteAddr = "127.0.0.1:40000"
			w := &discardWriter{h: http.Header{}}
			b.ReportAllocs()
			for b.Loop() {
				w.reset()
				h.ServeHTTP(w, r)
			}
			if w.h.Get("Content-Type") != "text/plain" {
				b.Fatalf("the answer did not come from the upstream: %v", w.h)
			}
		})
	}
}
