// Package ttlcache is a small bounded map whose entries expire at a time
// set per entry. It backs the caches of signed ID tokens, hydrator answers
// and token introspection results.
package ttlcache

import (
	"sync"
	"time"
)

// Cache maps keys to values until each entry's expiry. It holds at most Max
// entries: when full, expired entries are dropped first, then arbitrary
// ones. The zero value is not usable; call [New]. Safe for concurrent use.
type Cache[K comparable, V any] struct {
	mu  sync.Mutex
	m   map[K]entry[V]
	max int
	// Now is the clock; tests may replace it before first use.
	Now func() time.Time
}

type entry[V any] struct {
	v   V
	exp time.Time
}

// New returns a cache of at most max entries (max < 1 means 1).
func New[K comparable, V any](max int) *Cache[K, V] {
	if max < 1 {
		max = 1
	}
	return &Cache[K, V]{m: make(map[K]entry[V]), max: max, Now: time.Now}
}

// Get returns the value for k if it has not expired.
func (c *Cache[K, V]) Get(k K) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[k]
	if !ok {
		var zero V
		return zero, false
	}
	if !c.Now().Before(e.exp) {
		delete(c.m, k)
		var zero V
		return zero, false
	}
	return e.v, true
}

// Set stores v for k until exp. An exp not in the future stores nothing.
func (c *Cache[K, V]) Set(k K, v V, exp time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.Now()
	if !now.Before(exp) {
		delete(c.m, k)
		return
	}
	if _, ok := c.m[k]; !ok && len(c.m) >= c.max {
		c.evict(now)
	}
	c.m[k] = entry[V]{v: v, exp: exp}
}

// Delete removes k.
func (c *Cache[K, V]) Delete(k K) {
	c.mu.Lock()
	delete(c.m, k)
	c.mu.Unlock()
}

// Len returns the number of entries held, expired or not.
func (c *Cache[K, V]) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}

// evict drops expired entries, then, if the cache is still full, about a
// tenth of it (map order is random, so the victims are arbitrary).
func (c *Cache[K, V]) evict(now time.Time) {
	for k, e := range c.m {
		if !now.Before(e.exp) {
			delete(c.m, k)
		}
	}
	if len(c.m) < c.max {
		return
	}
	n := c.max/10 + 1
	for k := range c.m {
		if n == 0 {
			break
		}
		delete(c.m, k)
		n--
	}
}
