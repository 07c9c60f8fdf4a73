package proxy

import "time"

// Observer is told about every request the proxy and the decision API
// answer; the metrics of the operations side implement it. Implementations
// must be safe for concurrent use and cheap.
type Observer interface {
	// Request reports one answered request: the front end ("proxy" or
	// "decisions"), the rule id ("" when none matched), the decision
	// ("allowed", "denied", "error"), the status and the time taken.
	Request(frontend, rule, decision string, status int, d time.Duration)
}

type nopObserver struct{}

func (nopObserver) Request(string, string, string, int, time.Duration) {}
