package ttlcache

import (
	"fmt"
	"testing"
	"time"
)

func TestCacheExpiryAndBound(t *testing.T) {
	now := time.Unix(1000, 0)
	c := New[string, int](10)
	c.Now = func() time.Time { return now }

	c.Set("a", 1, now.Add(time.Minute))
	c.Set("past", 2, now.Add(-time.Second))
	if v, ok := c.Get("a"); !ok || v != 1 {
		t.Errorf("Get(a) = %v, %v; want 1, true", v, ok)
	}
	if _, ok := c.Get("past"); ok {
		t.Error("an entry set with a past expiry must not be stored")
	}
	now = now.Add(time.Minute)
	if _, ok := c.Get("a"); ok {
		t.Error("an entry must expire at its expiry time")
	}
	for i := 0; i < 100; i++ {
		c.Set(fmt.Sprint(i), i, now.Add(time.Hour))
		if c.Len() > 10 {
			t.Fatalf("cache holds %d entries, bound is 10", c.Len())
		}
	}
	if v, ok := c.Get("99"); !ok || v != 99 {
		t.Errorf("the newest entry must survive eviction: %v, %v", v, ok)
	}
	c.Delete("99")
	if _, ok := c.Get("99"); ok {
		t.Error("Delete did not remove the entry")
	}
}
