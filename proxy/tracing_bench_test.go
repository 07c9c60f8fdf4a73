package proxy_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/portcullis-proxy/portcullis/internal/metrics"
	"github.com/portcullis-proxy/portcullis/proxy"
)

// discardExporter drops finished spans: the benchmark measures making and
// ending spans, not a collector.
type discardExporter struct{}

func (discardExporter) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error { return nil }
func (discardExporter) Shutdown(context.Context) error                             { return nil }

// BenchmarkTracing serves the hot-path request of BenchmarkProxyRequest
// with tracing off (the configuration's default), on (every request
// sampled: request, match, three stage spans and the upstream span, batched
// to a discarding exporter), and through a bare httputil.ReverseProxy, the
// no-tracing reference, all in the same run. "off" against "httputil" is
// the same ratio as BenchmarkProxyRequest's; "on" against "off" is what
// tracing costs.
//
//	go test -run '^$' -bench Tracing -benchmem -count 5 ./proxy/
func BenchmarkTracing(b *testing.B) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, "hello from the upstream\n")
	}))
	defer up.Close()
	target, _ := url.Parse(up.URL)
	set := ruleSet(b, strings.ReplaceAll(benchRule, "UPSTREAM", up.URL))
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(discardExporter{}), sdktrace.WithSampler(sdktrace.AlwaysSample()))
	defer tp.Shutdown(context.Background())
	portcullis := func(t *proxy.Tracing) http.Handler {
		return (&proxy.Handler{Rules: staticRules{set}, Transport: proxy.NewTransport(), Log: benchLogger(), Observer: metrics.New(), Tracing: t}).Init()
	}
	handlers := map[string]http.Handler{
		"off": portcullis(nil),
		"on":  portcullis(proxy.NewTracing(tp, false)),
		"httputil": &httputil.ReverseProxy{
			Rewrite:   func(pr *httputil.ProxyRequest) { pr.SetURL(target); pr.SetXForwarded() },
			Transport: proxy.NewTransport(),
		},
	}
	for _, name := range []string{"httputil", "off", "on"} {
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
