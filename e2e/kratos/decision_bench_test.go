package kratos

import (
	"io"
	"net/http"
	"testing"

	"github.com/portcullis-proxy/portcullis/testsupport/benchtest"
)

// BenchmarkDecisionAPI asks the decision API of a running portcullis, over
// loopback, about a rule guarded by cookie_session with a real Kratos: with
// the session cache off (every decision asks Kratos), with a cache hit, and
// for an anonymous rule as the floor. The cache=hit line reports, from the
// same run, its speed-up over cache=off and its cost relative to the
// anonymous rule (about 1 means the hit is as cheap as no identity at all):
//
//	go test -run '^$' -bench DecisionAPI -benchmem ./e2e/kratos
func BenchmarkDecisionAPI(b *testing.B) {
	k, _, gw := startShared(b, "1h")
	id := k.RegisterBrowser(b)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	decide := func(b *testing.B, path string, withCookie bool) float64 {
		req, err := http.NewRequest(http.MethodGet, gw.DecisionsURL()+path, nil)
		if err != nil {
			b.Fatal(err)
		}
		if withCookie {
			req.AddCookie(id.Cookie)
		}
		do := func() {
			res, err := client.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode != http.StatusOK {
				b.Fatalf("decision %s: %d", path, res.StatusCode)
			}
		}
		do() // warm the connection (and the cache)
		b.ReportAllocs()
		b.ResetTimer()
		for b.Loop() {
			do()
		}
		return benchtest.NsPerOp(b)
	}
	benchtest.SessionCache(b,
		func(b *testing.B) float64 { return decide(b, "/uncached/page", true) },
		func(b *testing.B) float64 { return decide(b, "/open/page", false) },
		func(b *testing.B) float64 { return decide(b, "/web/page", true) })
}
