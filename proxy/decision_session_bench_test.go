package proxy_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/portcullis-proxy/portcullis/internal/metrics"
	"github.com/portcullis-proxy/portcullis/proxy"
	"github.com/portcullis-proxy/portcullis/testsupport/handlertest"
	"github.com/portcullis-proxy/portcullis/testsupport/handlertest/ruleset"
	"github.com/portcullis-proxy/portcullis/testsupport/kratostest"
)

// BenchmarkDecisionSession answers /decisions for a Kratos session token
// through bearer_token against a real Kratos, with the session cache on
// (every decision after the first is a hit) and off (every decision asks
// Kratos), next to the anonymous rule as the floor. The cache=hit line
// reports its speed-up over cache=off and its cost relative to anonymous,
// measured in the same run:
//
//	go test -run '^$' -bench DecisionSession -benchmem ./proxy/
func BenchmarkDecisionSession(b *testing.B) {
	k := kratostest.Start(b, kratostest.Options{})
	id := k.RegisterAPI(b)
	// hit and off check the session with bearer_token, the session cache
	// on and off.
	session := func(id, cache string) handlertest.Rule {
		return handlertest.Rule{ID: id, URL: "http://<[^/]+>/" + id + "/<.*>", Mutators: []string{"header"},
			Authenticators: []string{fmt.Sprintf("bearer_token: {check_session_url: %q, subject_from: identity.id, cache: %s}", k.WhoamiURL(), cache)}}
	}
	anon := anonRule
	anon.Upstream = ""
	doc := handlertest.Rules(anon, session("hit", "{ttl: 1h}"), session("off", "{enabled: false}"))
	h := proxy.NewAPI(proxy.APIOptions{DecisionOptions: proxy.DecisionOptions{Rules: ruleset.Static{Set: ruleSet(b, doc)}, Log: benchLogger(), Observer: metrics.New()}})
	run := func(b *testing.B, path string, token bool) float64 {
		r := httptest.NewRequest(http.MethodGet, "http://127.0.0.1:4456/decisions"+path, nil)
		if token {
			// (anonymous is not responsible for a request that carries
			// credentials, as in Oathkeeper.)
			r.Header.Set("Authorization", "Bearer "+id.SessionToken)
		}
		w := &discardWriter{h: http.Header{}}
		h.ServeHTTP(w, r)
		if w.code != http.StatusOK || w.h.Get("X-User") == "" {
			b.Fatalf("%s: decision = %d %v", path, w.code, w.h)
		}
		b.ReportAllocs()
		b.ResetTimer()
		for b.Loop() {
			w.reset()
			h.ServeHTTP(w, r)
		}
		if w.code != http.StatusOK {
			b.Fatalf("%s: decision = %d", path, w.code)
		}
		return float64(b.Elapsed().Nanoseconds()) / float64(b.N)
	}
	var offNs, anonNs float64
	b.Run("cache=off", func(b *testing.B) { offNs = run(b, "/off/items/42", true) })
	b.Run("anonymous", func(b *testing.B) { anonNs = run(b, "/anon/items/42", false) })
	b.Run("cache=hit", func(b *testing.B) {
		hitNs := run(b, "/hit/items/42", true)
		if offNs > 0 {
			b.ReportMetric(offNs/hitNs, "x-faster-than-off")
		}
		if anonNs > 0 {
			b.ReportMetric(hitNs/anonNs, "x-anonymous-cost")
		}
	})
}
