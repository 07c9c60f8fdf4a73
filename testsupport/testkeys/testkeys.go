// Package testkeys generates real signing keys and key sets for tests, and
// signs tokens with them. It is part of testsupport (the test harnesses):
// only _test files import it.
package testkeys

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"testing"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// RSA returns a fresh 2048-bit RSA private key as a JWK with kid and RS256.
func RSA(t testing.TB, kid string) jose.JSONWebKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return jose.JSONWebKey{Key: k, KeyID: kid, Algorithm: string(jose.RS256), Use: "sig"}
}

// EC returns a fresh P-256 private key as a JWK with kid and ES256.
func EC(t testing.TB, kid string) jose.JSONWebKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return jose.JSONWebKey{Key: k, KeyID: kid, Algorithm: string(jose.ES256), Use: "sig"}
}

// Set marshals keys as a JWKS document (private parts included when the
// keys are private).
func Set(t testing.TB, keys ...jose.JSONWebKey) []byte {
	t.Helper()
	b, err := json.Marshal(jose.JSONWebKeySet{Keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// PublicSet marshals the public halves of keys as a JWKS document.
func PublicSet(t testing.TB, keys ...jose.JSONWebKey) []byte {
	t.Helper()
	pub := make([]jose.JSONWebKey, len(keys))
	for i, k := range keys {
		pub[i] = k.Public()
	}
	return Set(t, pub...)
}

// Sign returns a compact JWT of claims signed with k — a private key from
// [RSA] or [EC], or a shared secret ([]byte Key, Algorithm HS256) — with
// its kid in the header unless omitKid.
func Sign(t testing.TB, k jose.JSONWebKey, claims map[string]any, omitKid bool) string {
	t.Helper()
	opts := (&jose.SignerOptions{}).WithType("JWT")
	if !omitKid {
		opts = opts.WithHeader("kid", k.KeyID)
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.SignatureAlgorithm(k.Algorithm), Key: k.Key}, opts)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jwt.Signed(s).Claims(claims).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}
