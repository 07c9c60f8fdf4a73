package mutators

import (
	"testing"

	"github.com/portcullis-proxy/portcullis/testsupport/handlertest"
	"github.com/portcullis-proxy/portcullis/testsupport/testkeys"
)

// BenchmarkIDToken compares a request served from the token cache with one
// that signs (the reference, measured in the same run): the cache is what
// keeps per-request cost flat for busy subjects.
func BenchmarkIDToken(b *testing.B) {
	for _, tc := range []struct {
		name  string
		fresh bool
	}{{"cached", false}, {"sign-every-request", true}} {
		b.Run(tc.name, func(b *testing.B) {
			builder, ib := idTokenBuilders(b, handlertest.JSON(b, map[string]any{
				"issuer_url": "https://gw.example.test/",
				"jwks_url":   "inline://" + b64(testkeys.Set(b, testkeys.EC(b, "ec"))),
				"claims":     `{"room": "{{ printIndex .MatchContext.RegexpCaptureGroups 0 }}"}`,
			}), handlertest.Deps(b))
			m := handlertest.Build(b, builder, nil)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				r, s := newSession(b, "alice", "http://gw.test/ws/lobby", "lobby")
				if tc.fresh {
					ib.cache.Delete(m.(*idTokenMutator).cacheKey("alice", []byte(`{"room": "lobby"}`)))
				}
				if err := m.Mutate(r, s); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
