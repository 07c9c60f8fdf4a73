// Package benchtest holds the shapes benchmarks share, so that figures
// measured in different places (a handler in process, the whole server
// over loopback) are taken and reported alike.
package benchtest

import "testing"

// SessionCache runs the three sub-benchmarks that price a session cache,
// in one run: cache=off (every decision asks the session store), anonymous
// (a rule with no identity, the floor) and cache=hit. Each function runs
// its rule's decision b.N times and returns its ns/op ([NsPerOp]). The
// cache=hit line also reports its speed-up over cache=off
// (x-faster-than-off) and its cost relative to the anonymous rule
// (x-anonymous-cost: about 1 means a hit is as cheap as no identity at
// all); a ratio whose reference did not run (a -bench filter) is left out.
func SessionCache(b *testing.B, off, anonymous, hit func(*testing.B) float64) {
	var offNs, anonNs float64
	b.Run("cache=off", func(b *testing.B) { offNs = off(b) })
	b.Run("anonymous", func(b *testing.B) { anonNs = anonymous(b) })
	b.Run("cache=hit", func(b *testing.B) {
		hitNs := hit(b)
		if offNs > 0 {
			b.ReportMetric(offNs/hitNs, "x-faster-than-off")
		}
		if anonNs > 0 {
			b.ReportMetric(hitNs/anonNs, "x-anonymous-cost")
		}
	})
}

// NsPerOp is the time b measured per iteration so far, in nanoseconds.
func NsPerOp(b *testing.B) float64 {
	return float64(b.Elapsed().Nanoseconds()) / float64(b.N)
}
