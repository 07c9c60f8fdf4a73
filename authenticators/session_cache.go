package authenticators

import (
	"container/list"
	"errors"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/portcullis-proxy/portcullis/pipeline"
)

// CacheConfig is the `cache` block of the session authenticators
// (cookie_session, bearer_token).
//
// Trade-off: a cached session is honoured for up to TTL after it was last
// checked, so a session revoked in the identity provider keeps working for
// at most TTL (and never past its own expires_at). Lower TTL narrows that
// window at the cost of more identity-provider calls; `enabled: false` asks
// the identity provider on every request.
type CacheConfig struct {
	// Enabled turns the cache on (default true).
	Enabled bool `json:"enabled"`
	// TTL is how long a successful check is reused (default 5s). An entry
	// never outlives the session's expires_at.
	TTL pipeline.Duration `json:"ttl"`
	// MaxEntries bounds the cache (default 100000); when full, the least
	// recently used entry is evicted.
	MaxEntries int `json:"max_entries"`
}

// SetDefaults sets enabled, 5s, 100000.
func (c *CacheConfig) SetDefaults() {
	c.Enabled = true
	c.TTL = pipeline.Duration(5 * time.Second)
	c.MaxEntries = 100000
}

// Validate rejects a non-positive ttl or max_entries on an enabled cache.
func (c *CacheConfig) Validate() error {
	if !c.Enabled {
		return nil
	}
	if c.TTL <= 0 {
		return errors.New("cache.ttl: must be positive")
	}
	if c.MaxEntries <= 0 {
		return errors.New("cache.max_entries: must be positive")
	}
	return nil
}

// cacheKey is the SHA-256 of everything a session check sends (see
// checkInput.key): the raw credential is never kept as a key.
type cacheKey [32]byte

// checkedSession is the outcome of a successful session check. It is shared
// by every request that hits the cache and must not be modified once
// stored: a hit hands its strings to the request as they are, and only
// extra's top level is copied (see [sessionChecker.authenticate]).
type checkedSession struct {
	subject   string
	extra     map[string]any
	sessionID string
	// expiresAt is the session's expiry; zero when the store does not say.
	expiresAt time.Time
	// credentialID is [pipeline.CredentialID] of the credential the check
	// sent (see checkInput.credentialID). The key covers that credential,
	// so it is computed once per check rather than hashed again on every
	// hit; like the key, it is a hash: the cache holds no credential.
	credentialID string
}

// sessionCache maps credential hashes to checked sessions for a bounded
// time. Failures are never stored. Concurrent misses for one key share a
// single check through flight. Safe for concurrent use.
type sessionCache struct {
	ttl time.Duration
	max int
	now func() time.Time

	mu      sync.Mutex
	entries map[cacheKey]*list.Element
	lru     list.List // of *cacheEntry, most recently used first

	flight singleflight.Group
}

type cacheEntry struct {
	key      cacheKey
	val      *checkedSession
	deadline time.Time
}

func newSessionCache(c CacheConfig) *sessionCache {
	if !c.Enabled {
		return nil
	}
	return &sessionCache{
		ttl:     c.TTL.D(),
		max:     c.MaxEntries,
		now:     time.Now,
		entries: make(map[cacheKey]*list.Element),
	}
}

// get returns the live entry for k.
func (c *sessionCache) get(k cacheKey) (*checkedSession, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.entries[k]
	if !ok {
		return nil, false
	}
	e := el.Value.(*cacheEntry)
	if !c.now().Before(e.deadline) {
		c.removeElement(el)
		return nil, false
	}
	c.lru.MoveToFront(el)
	return e.val, true
}

// put stores v for k until now+ttl or the session's expiry, whichever comes
// first. A session that has already expired is not stored.
func (c *sessionCache) put(k cacheKey, v *checkedSession) {
	now := c.now()
	deadline := now.Add(c.ttl)
	if !v.expiresAt.IsZero() && v.expiresAt.Before(deadline) {
		deadline = v.expiresAt
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.entries[k]; ok {
		c.removeElement(el)
	}
	if !now.Before(deadline) {
		return
	}
	c.entries[k] = c.lru.PushFront(&cacheEntry{key: k, val: v, deadline: deadline})
	for len(c.entries) > c.max {
		c.removeElement(c.lru.Back())
	}
}

// remove drops the entry for k (a revalidation found the session rejected).
func (c *sessionCache) remove(k cacheKey) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.entries[k]; ok {
		c.removeElement(el)
	}
}

func (c *sessionCache) removeElement(el *list.Element) {
	delete(c.entries, el.Value.(*cacheEntry).key)
	c.lru.Remove(el)
}

// len returns the number of stored entries, live or not yet swept.
func (c *sessionCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}
