package proxy_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"

	"github.com/portcullis-proxy/portcullis/internal/metrics"
	"github.com/portcullis-proxy/portcullis/proxy"
)

// The hot-path benchmarks: one proxied request and one decision, with the
// request log (text, info level, to a discarding writer) and the
// Prometheus metrics wired as internal/app wires them. allocs/op is the
// figure to watch:
//
//	go test -run '^$' -bench 'ProxyRequest|Decision' -benchmem ./proxy/
//
// bench/ measures the same paths end to end under load.

const benchRule = `
- id: anon
  match: {url: "http://<[^/]+>/anon/<.*>", methods: [GET]}
  authenticators: [{handler: anonymous}]
  authorizer: {handler: allow}
  mutators: [{handler: header}]
  upstream: {url: "UPSTREAM"}
`

// benchLogger logs as the server does by default (text, info), into
// nothing.
func benchLogger() *logrus.Logger {
	l := logrus.New()
	l.Out = io.Discard
	l.SetFormatter(&logrus.TextFormatter{DisableColors: true, FullTimestamp: true})
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

// BenchmarkProxyRequest serves GET /anon/items/42 (anonymous → allow →
// header) through the proxy handler to a real upstream on loopback, and
// the same request through a bare httputil.ReverseProxy on the same
// transport as the reference. Both lines include the in-process
// upstream's own allocations, so the difference between them is the
// proxy's.
func BenchmarkProxyRequest(b *testing.B) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, "hello from the upstream\n")
	}))
	defer up.Close()
	target, _ := url.Parse(up.URL)
	handlers := map[string]http.Handler{
		"portcullis": (&proxy.Handler{
			Rules:     staticRules{ruleSet(b, strings.ReplaceAll(benchRule, "UPSTREAM", up.URL))},
			Transport: proxy.NewTransport(),
			Log:       benchLogger(),
			Observer:  metrics.New(),
		}).Init(),
		"httputil": &httputil.ReverseProxy{
			Rewrite:   func(pr *httputil.ProxyRequest) { pr.SetURL(target); pr.SetXForwarded() },
			Transport: proxy.NewTransport(),
		},
	}
	for _, name := range []string{"portcullis", "httputil"} {
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

// BenchmarkDecision answers /decisions/anon/items/42 for the same rule:
// the pipeline alone, with no upstream.
func BenchmarkDecision(b *testing.B) {
	api := &proxy.API{
		Rules:    staticRules{ruleSet(b, strings.ReplaceAll(benchRule, "UPSTREAM", "http://127.0.0.1:1"))},
		Log:      benchLogger(),
		Observer: metrics.New(),
	}
	h := api.Handler()
	b.Run("anonymous", func(b *testing.B) {
		r := httptest.NewRequest(http.MethodGet, "http://127.0.0.1:4456/decisions/anon/items/42", nil)
		w := &discardWriter{h: http.Header{}}
		b.ReportAllocs()
		for b.Loop() {
			w.reset()
			h.ServeHTTP(w, r)
		}
		if w.code != http.StatusOK || w.h.Get("X-User") != "anonymous" {
			b.Fatalf("decision = %d %v", w.code, w.h)
		}
	})
}
