package proxy_test

import (
	"context"
	"net/http"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"

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
	up := helloUpstream(b)
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(discardExporter{}), sdktrace.WithSampler(sdktrace.AlwaysSample()))
	defer tp.Shutdown(context.Background())
	portcullis := func(t *proxy.Tracing) http.Handler {
		o := hotPathOptions(b, up.URL)
		o.Tracing = t
		return proxy.NewHandler(proxy.HandlerOptions{DecisionOptions: o, Transport: proxy.NewTransport()})
	}
	benchHotPath(b, map[string]http.Handler{
		"off":      portcullis(nil),
		"on":       portcullis(proxy.NewTracing(tp, false)),
		"httputil": httputilReference(up),
	}, "httputil", "off", "on")
}
