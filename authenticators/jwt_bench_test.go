package authenticators

import (
	"net/http"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/portcullis-proxy/portcullis/testsupport/testkeys"
)

// BenchmarkJWT compares the authenticator (token lookup, cached key set,
// signature, claim checks, session fill) with a bare go-jose signature
// verification of the same token, measured in the same run: the ratio is
// the authenticator's overhead over the cryptography it cannot avoid.
func BenchmarkJWT(b *testing.B) {
	k := testkeys.RSA(b, "k")
	ks := newJWKSServer(b, k)
	tok := testkeys.Sign(b, k, map[string]any{"sub": "alice", "iss": "https://idp.example.test/", "aud": "chat", "exp": time.Now().Add(time.Hour).Unix(), "scp": []string{"chat.read"}}, false)

	b.Run("reference-go-jose-verify", func(b *testing.B) {
		pub := k.Public()
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			parsed, err := jwt.ParseSigned(tok, []jose.SignatureAlgorithm{jose.RS256})
			if err != nil {
				b.Fatal(err)
			}
			var c jwt.Claims
			if err := parsed.Claims(pub.Key, &c); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("authenticator", func(b *testing.B) {
		a := newJWTAuthenticator(b, map[string]any{"jwks_urls": []string{ks.URL}}, map[string]any{
			"trusted_issuers": []string{"https://idp.example.test/"}, "target_audience": []string{"chat"}, "required_scope": []string{"chat.read"},
		})
		r, _ := http.NewRequest(http.MethodGet, "http://gw.test/ws", nil)
		r.Header.Set("Authorization", "Bearer "+tok)
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			_, s := jwtRequest(b, "http://gw.test/ws")
			if err := a.Authenticate(r, s); err != nil {
				b.Fatal(err)
			}
		}
	})
}
