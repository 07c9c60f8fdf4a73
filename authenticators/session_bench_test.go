package authenticators

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/portcullis-proxy/portcullis/pipeline"
	"github.com/portcullis-proxy/portcullis/testsupport/kratostest"
)

// BenchmarkCookieSession measures cookie_session against a real Kratos with
// the cache off (every request asks Kratos) and on (every request after
// the first is a hit), next to the anonymous authenticator as the floor.
// The cache=hit line reports its speed-up over cache=off and its cost
// relative to anonymous, measured in the same run:
//
//	go test -run '^$' -bench CookieSession -benchmem ./authenticators
func BenchmarkCookieSession(b *testing.B) {
	k := kratosShared.Get(b)
	id := k.RegisterBrowser(b)
	url := k.WhoamiURL()
	var offNs, anonNs float64
	run := func(b *testing.B, a pipeline.Authenticator, withCookie bool) float64 {
		r := httptest.NewRequest(http.MethodGet, "http://app.test/resource", nil)
		if withCookie {
			r.AddCookie(id.Cookie)
		}
		if err := a.Authenticate(r, pipeline.NewSession(r, r.URL, nil)); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		b.ResetTimer()
		for b.Loop() {
			if err := a.Authenticate(r, pipeline.NewSession(r, r.URL, nil)); err != nil {
				b.Fatal(err)
			}
		}
		return float64(b.Elapsed().Nanoseconds()) / float64(b.N)
	}
	b.Run("cache=off", func(b *testing.B) {
		a := buildSession(b, pipeline.TypedFactory(NewCookieSession), map[string]any{
			"check_session_url": url, "only": []string{kratostest.SessionCookie},
			"extra_from": "@this", "cache": map[string]any{"enabled": false},
		})
		offNs = run(b, a, true)
	})
	b.Run("anonymous", func(b *testing.B) {
		bld, _ := pipeline.TypedFactory(NewAnonymous)(nil, pipeline.Deps{})
		a, err := bld.Build(nil)
		if err != nil {
			b.Fatal(err)
		}
		anonNs = run(b, a, false)
	})
	b.Run("cache=hit", func(b *testing.B) {
		a := buildSession(b, pipeline.TypedFactory(NewCookieSession), map[string]any{
			"check_session_url": url, "only": []string{kratostest.SessionCookie},
			"extra_from": "@this", "cache": map[string]any{"ttl": "1h"},
		})
		hitNs := run(b, a, true)
		if offNs > 0 {
			b.ReportMetric(offNs/hitNs, "x-faster-than-off")
		}
		if anonNs > 0 {
			b.ReportMetric(hitNs/anonNs, "x-anonymous-cost")
		}
	})
}
