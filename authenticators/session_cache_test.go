package authenticators

import (
	"fmt"
	"testing"
	"time"

	"github.com/portcullis-proxy/portcullis/pipeline"
)

func newTestCache(ttl time.Duration, max int) (*sessionCache, *testClock) {
	c := newSessionCache(CacheConfig{Enabled: true, TTL: pipeline.Duration(ttl), MaxEntries: max})
	clock := newTestClock()
	c.now = clock.Now
	return c, clock
}

func keyOf(s string) cacheKey {
	in := checkInput{token: s}
	return in.key()
}

func TestSessionCacheExpiry(t *testing.T) {
	cases := []struct {
		name      string
		expiresIn time.Duration // 0: the store did not say
		advance   time.Duration
		wantHit   bool
	}{
		{"fresh", 0, 0, true},
		{"just before ttl", 0, 5*time.Second - time.Millisecond, true},
		{"at ttl", 0, 5 * time.Second, false},
		{"session ends before ttl, still live", 2 * time.Second, time.Second, true},
		{"session ends before ttl, ended", 2 * time.Second, 2 * time.Second, false},
		{"session ends after ttl", time.Hour, 5 * time.Second, false},
	}
	for _, tc := range cases {
		c, clock := newTestCache(5*time.Second, 10)
		v := &checkedSession{subject: "s"}
		if tc.expiresIn != 0 {
			v.expiresAt = clock.Now().Add(tc.expiresIn)
		}
		c.put(keyOf("a"), v)
		clock.Advance(tc.advance)
		got, ok := c.get(keyOf("a"))
		if ok != tc.wantHit || (ok && got != v) {
			t.Errorf("%s: get = %v, %v; want hit %v", tc.name, got, ok, tc.wantHit)
		}
		if !tc.wantHit && c.len() != 0 {
			t.Errorf("%s: expired entry kept", tc.name)
		}
	}
}

func TestSessionCacheRejectsExpiredSession(t *testing.T) {
	c, clock := newTestCache(5*time.Second, 10)
	c.put(keyOf("a"), &checkedSession{subject: "s", expiresAt: clock.Now().Add(-time.Second)})
	if _, ok := c.get(keyOf("a")); ok || c.len() != 0 {
		t.Error("a session that has already expired was cached")
	}
	// Replacing a live entry with an expired answer drops the entry.
	c.put(keyOf("b"), &checkedSession{subject: "s"})
	c.put(keyOf("b"), &checkedSession{subject: "s", expiresAt: clock.Now()})
	if _, ok := c.get(keyOf("b")); ok {
		t.Error("an expired answer left the old entry in place")
	}
}

func TestSessionCacheBoundedLRU(t *testing.T) {
	const max = 3
	c, _ := newTestCache(time.Hour, max)
	for i := range max {
		c.put(keyOf(fmt.Sprint(i)), &checkedSession{subject: fmt.Sprint(i)})
	}
	c.get(keyOf("0")) // 0 is now the most recently used; 1 the least
	c.put(keyOf("3"), &checkedSession{subject: "3"})
	if c.len() != max {
		t.Fatalf("len = %d, want %d", c.len(), max)
	}
	for _, k := range []string{"0", "2", "3"} {
		if _, ok := c.get(keyOf(k)); !ok {
			t.Errorf("entry %s evicted, want kept", k)
		}
	}
	if _, ok := c.get(keyOf("1")); ok {
		t.Error("least recently used entry 1 was kept")
	}
	// Many inserts never exceed the bound.
	for i := range 100 {
		c.put(keyOf(fmt.Sprint("x", i)), &checkedSession{subject: "x"})
	}
	if c.len() != max {
		t.Errorf("len after 100 inserts = %d, want %d", c.len(), max)
	}
	c.remove(keyOf("x99"))
	if _, ok := c.get(keyOf("x99")); ok {
		t.Error("removed entry still present")
	}
}

func TestSessionCacheDisabled(t *testing.T) {
	if c := newSessionCache(CacheConfig{Enabled: false, TTL: pipeline.Duration(time.Second), MaxEntries: 1}); c != nil {
		t.Error("a disabled cache was built")
	}
}

// TestCheckInputKey: the key covers everything a check sends and never is
// the credential itself.
func TestCheckInputKey(t *testing.T) {
	base := checkInput{method: "GET", url: "http://s/a", cookie: "c=1", token: "t"}
	variants := []checkInput{
		{method: "POST", url: "http://s/a", cookie: "c=1", token: "t"},
		{method: "GET", url: "http://s/b", cookie: "c=1", token: "t"},
		{method: "GET", url: "http://s/a", cookie: "c=2", token: "t"},
		{method: "GET", url: "http://s/a", cookie: "c=1", token: "u"},
		{method: "GET", url: "http://s/a", cookie: "c=1", token: "t", header: map[string][]string{"X-A": {"1"}}},
		// Field boundaries matter: "c=1"+"t" is not "c=1t"+"".
		{method: "GET", url: "http://s/a", cookie: "c=1t", token: ""},
	}
	k := base.key()
	for i, v := range variants {
		if v.key() == k {
			t.Errorf("variant %d has the same key as the base", i)
		}
	}
	again := base
	if again.key() != k {
		t.Error("equal inputs gave different keys")
	}
	// Values are counted, so they cannot pass for the next header.
	m1 := checkInput{header: map[string][]string{"K": {"v1", "X", "v2"}}}
	m2 := checkInput{header: map[string][]string{"K": {"v1"}, "X": {"v2"}}}
	if m1.key() == m2.key() {
		t.Error("header values and names share an encoding")
	}
	h1 := checkInput{header: map[string][]string{"X-A": {"1"}, "X-B": {"2"}}}
	h2 := checkInput{header: map[string][]string{"X-B": {"2"}, "X-A": {"1"}}}
	if h1.key() != h2.key() {
		t.Error("header order changed the key")
	}
}
