package proxy_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/portcullis-proxy/portcullis/internal/metrics"
	"github.com/portcullis-proxy/portcullis/proxy"
	"github.com/portcullis-proxy/portcullis/testsupport/handlertest/ruleset"
)

// The hot-path benchmarks: one proxied request and one decision, with the
// request log (text, info level, to a discarding writer) and the
// Prometheus metrics wired as internal/app wires them. allocs/op is the
// figure to watch:
//
//	go test -run '^$' -bench 'ProxyRequest|Decision' -benchmem ./proxy/
//
// bench/ measures the same paths end to end under load.

// hotPathOptions are the decision options of the hot-path benchmarks over
// benchRule with upstream up: the server's default log and its metrics.
func hotPathOptions(b *testing.B, up string) proxy.DecisionOptions {
	return proxy.DecisionOptions{Rules: ruleset.Static{Set: ruleSet(b, withUpstream(benchRule, up))}, Log: benchLogger(), Observer: metrics.New()}
}

// BenchmarkProxyRequest serves GET /anon/items/42 (anonymous → allow →
// header) through the proxy handler to a real upstream on loopback, and
// the same request through a bare httputil.ReverseProxy on the same
// transport as the reference. Both lines include the in-process
// upstream's own allocations, so the difference between them is the
// proxy's.
func BenchmarkProxyRequest(b *testing.B) {
	up := helloUpstream(b)
	benchHotPath(b, map[string]http.Handler{
		"portcullis": proxy.NewHandler(proxy.HandlerOptions{DecisionOptions: hotPathOptions(b, up.URL), Transport: proxy.NewTransport()}),
		"httputil":   httputilReference(up),
	}, "portcullis", "httputil")
}

// BenchmarkDecision answers /decisions/anon/items/42 for the same rule:
// the pipeline alone, with no upstream.
func BenchmarkDecision(b *testing.B) {
	h := proxy.NewAPI(proxy.APIOptions{DecisionOptions: hotPathOptions(b, "http://127.0.0.1:1")})
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
