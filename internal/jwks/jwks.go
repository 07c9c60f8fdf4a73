// Package jwks loads JSON Web Key Sets from file://, http(s):// or inline://
// locations, caches them, and refreshes them when they age or when a token
// names a key id the cache does not hold (rate limited, so a stream of
// forged key ids cannot turn into a stream of fetches).
package jwks

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"golang.org/x/sync/singleflight"

	"github.com/portcullis-proxy/portcullis/internal/fetch"

	"github.com/portcullis-proxy/portcullis/pipeline"
)

// Defaults for a [Registry].
const (
	// DefaultTTL is how long a fetched key set is used before it is
	// fetched again (a failed fetch keeps the old set).
	DefaultTTL = 5 * time.Minute
	// DefaultMinRefresh is the least time between two fetches of one
	// location triggered by an unknown key id.
	DefaultMinRefresh = 5 * time.Second
	// DefaultFetchTimeout bounds one fetch.
	DefaultFetchTimeout = 5 * time.Second
)

// ErrNoKeys is returned when a location has never produced a key set (it
// could not be read or parsed): verification cannot happen and the caller
// must fail closed with a 503.
const ErrNoKeys pipeline.Sentinel = "no key set available"

// Registry shares one cached [Source] per location among all the rules
// that name it. Its fields are read when a Source is first made.
type Registry struct {
	Client       *http.Client
	TTL          time.Duration
	MinRefresh   time.Duration
	FetchTimeout time.Duration

	mu      sync.Mutex
	sources map[string]*Source
}

// Source returns the shared source for url (which must pass
// [fetch.CheckURL]).
func (r *Registry) Source(url string) *Source {
	r.mu.Lock()
	defer r.mu.Unlock()
	if s, ok := r.sources[url]; ok {
		return s
	}
	if r.sources == nil {
		r.sources = map[string]*Source{}
	}
	s := &Source{
		url:          url,
		client:       r.Client,
		ttl:          orDefault(r.TTL, DefaultTTL),
		minRefresh:   orDefault(r.MinRefresh, DefaultMinRefresh),
		fetchTimeout: orDefault(r.FetchTimeout, DefaultFetchTimeout),
		now:          time.Now,
	}
	r.sources[url] = s
	return s
}

// Sources returns the sources made so far, in no particular order.
func (r *Registry) Sources() []*Source {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]*Source, 0, len(r.sources))
	for _, s := range r.sources {
		out = append(out, s)
	}
	return out
}

func orDefault(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// Source is one cached key set location.
type Source struct {
	url          string
	client       *http.Client
	ttl          time.Duration
	minRefresh   time.Duration
	fetchTimeout time.Duration
	now          func() time.Time

	group singleflight.Group

	mu          sync.RWMutex
	keys        *jose.JSONWebKeySet
	fetchedAt   time.Time
	lastAttempt time.Time
	lastErr     error
}

// URL returns the location (it may be an inline:// document; use
// [fetch.Redact] before logging it).
func (s *Source) URL() string { return s.url }

// Keys returns the cached key set, fetching it when none is held or the one
// held is older than the TTL. A failed refresh keeps serving the old set;
// with no set at all the error wraps [ErrNoKeys].
func (s *Source) Keys(ctx context.Context) (*jose.JSONWebKeySet, error) {
	s.mu.RLock()
	keys, fetchedAt := s.keys, s.fetchedAt
	s.mu.RUnlock()
	if keys != nil && s.now().Sub(fetchedAt) < s.ttl {
		return keys, nil
	}
	return s.refresh(ctx)
}

// Refresh fetches the key set again unless the last attempt was less than
// the minimum refresh interval ago (then the held set is returned as is).
// It is what a lookup of an unknown key id calls.
func (s *Source) Refresh(ctx context.Context) (*jose.JSONWebKeySet, error) {
	return s.refresh(ctx)
}

func (s *Source) refresh(ctx context.Context) (*jose.JSONWebKeySet, error) {
	s.mu.RLock()
	keys, last, lastErr := s.keys, s.lastAttempt, s.lastErr
	s.mu.RUnlock()
	// Whatever asked, a location is not fetched twice within the minimum
	// refresh interval: an unreachable key server is not hammered by every
	// request, and forged key ids cannot force fetches.
	if !last.IsZero() && s.now().Sub(last) < s.minRefresh {
		if keys == nil {
			return nil, fmt.Errorf("%w from %s: %w", ErrNoKeys, fetch.Redact(s.url), lastErr)
		}
		return keys, nil
	}
	// One fetch at a time per location; concurrent callers share it. The
	// fetch runs on its own deadline so one caller's cancellation does not
	// fail the others.
	v, err, _ := s.group.Do("fetch", func() (any, error) {
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.fetchTimeout)
		defer cancel()
		set, err := Load(fctx, s.client, s.url)
		s.mu.Lock()
		defer s.mu.Unlock()
		s.lastAttempt = s.now()
		s.lastErr = err
		if err != nil {
			return s.keys, err
		}
		s.keys, s.fetchedAt = set, s.lastAttempt
		return set, nil
	})
	set, _ := v.(*jose.JSONWebKeySet)
	if err != nil {
		if set != nil {
			return set, nil // keep serving the last good set
		}
		return nil, fmt.Errorf("%w from %s: %w", ErrNoKeys, fetch.Redact(s.url), err)
	}
	return set, nil
}

// Load reads and parses a key set. Keys that do not parse make the whole
// document an error; an empty set is an error too.
func Load(ctx context.Context, client *http.Client, url string) (*jose.JSONWebKeySet, error) {
	b, err := fetch.Read(ctx, client, url)
	if err != nil {
		return nil, err
	}
	return Parse(b)
}

// Parse parses a JWKS document.
func Parse(b []byte) (*jose.JSONWebKeySet, error) {
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(b, &set); err != nil {
		return nil, fmt.Errorf("parsing key set: %w", err)
	}
	if len(set.Keys) == 0 {
		return nil, errors.New("key set holds no keys")
	}
	for i, k := range set.Keys {
		if _, sym := k.Key.([]byte); !sym && !k.Valid() {
			return nil, fmt.Errorf("key set: key %d (kid %q) is not valid", i, k.KeyID)
		}
	}
	return &set, nil
}

// Public returns the public halves of the asymmetric keys in sets, keeping
// kid, alg and use. Symmetric keys are left out: they have no public half
// and must never be published.
func Public(sets ...*jose.JSONWebKeySet) jose.JSONWebKeySet {
	out := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{}}
	for _, set := range sets {
		if set == nil {
			continue
		}
		for _, k := range set.Keys {
			if _, sym := k.Key.([]byte); sym {
				continue
			}
			p := k.Public()
			if !p.Valid() || !p.IsPublic() {
				continue
			}
			// Certificates are public but not needed by verifiers; drop them
			// to keep the document small.
			p.Certificates = nil
			p.CertificateThumbprintSHA1 = nil
			p.CertificateThumbprintSHA256 = nil
			out.Keys = append(out.Keys, p)
		}
	}
	return out
}

// AlgorithmFor returns the key's declared algorithm or the one its type
// implies: RSA → RS256, P-256 → ES256, P-384 → ES384, P-521 → ES512,
// Ed25519 → EdDSA. It returns "" for keys that cannot sign.
func AlgorithmFor(k jose.JSONWebKey) jose.SignatureAlgorithm {
	if k.Algorithm != "" {
		return jose.SignatureAlgorithm(k.Algorithm)
	}
	switch key := k.Key.(type) {
	case *rsa.PrivateKey, *rsa.PublicKey:
		return jose.RS256
	case *ecdsa.PrivateKey:
		return ecAlg(key.Curve)
	case *ecdsa.PublicKey:
		return ecAlg(key.Curve)
	case ed25519.PrivateKey, ed25519.PublicKey:
		return jose.EdDSA
	}
	return ""
}

func ecAlg(c elliptic.Curve) jose.SignatureAlgorithm {
	switch c {
	case elliptic.P256():
		return jose.ES256
	case elliptic.P384():
		return jose.ES384
	case elliptic.P521():
		return jose.ES512
	}
	return ""
}

// Fits reports whether key k can verify a signature made with alg: the key
// type must match the algorithm family (so an RSA key is never used as an
// HMAC secret), and a key that declares its own alg or a use other than
// "sig" is only used for that.
func Fits(k jose.JSONWebKey, alg jose.SignatureAlgorithm) bool {
	if k.Use != "" && k.Use != "sig" {
		return false
	}
	if k.Algorithm != "" && k.Algorithm != string(alg) {
		return false
	}
	switch k.Key.(type) {
	case *rsa.PublicKey, *rsa.PrivateKey:
		switch alg {
		case jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512:
			return true
		}
	case *ecdsa.PublicKey, *ecdsa.PrivateKey:
		return AlgorithmFor(jose.JSONWebKey{Key: k.Key}) == alg
	case ed25519.PublicKey, ed25519.PrivateKey:
		return alg == jose.EdDSA
	case []byte:
		// A shared secret (kty oct) verifies HMAC tokens; callers allow
		// the HMAC family only when a configuration asks for it.
		switch alg {
		case jose.HS256, jose.HS384, jose.HS512:
			return true
		}
	}
	return false
}

// VerificationKey returns the public key of k (a private key in a JWKS is
// reduced to its public half before use).
func VerificationKey(k jose.JSONWebKey) any {
	if secret, ok := k.Key.([]byte); ok {
		return secret
	}
	if k.IsPublic() {
		return k.Key
	}
	p := k.Public()
	return p.Key
}

// Candidates returns the keys from sources that fit alg and carry kid (with
// kid "", every fitting key). When kid is set and no held set has it, each
// source is refreshed (rate limited) and searched again, so a rotated key
// is picked up on first sight. The error wraps [ErrNoKeys] only when no
// source has any key set at all.
func Candidates(ctx context.Context, sources []*Source, kid string, alg jose.SignatureAlgorithm) ([]jose.JSONWebKey, error) {
	find := func(refresh bool) ([]jose.JSONWebKey, error) {
		var out []jose.JSONWebKey
		var errs []error
		for _, s := range sources {
			var set *jose.JSONWebKeySet
			var err error
			if refresh {
				set, err = s.Refresh(ctx)
			} else {
				set, err = s.Keys(ctx)
			}
			if err != nil {
				errs = append(errs, err)
				continue
			}
			for _, k := range set.Keys {
				if (kid == "" || k.KeyID == kid) && Fits(k, alg) {
					out = append(out, k)
				}
			}
		}
		if len(errs) == len(sources) {
			return nil, errors.Join(errs...)
		}
		return out, nil
	}
	keys, err := find(false)
	if len(keys) > 0 || kid == "" {
		return keys, err
	}
	return find(true)
}
