package proxy

import "time"

// Observer is told about every request the front ends over the decision
// path answer; the metrics of the operations side implement it.
// Implementations must be safe for concurrent use and cheap.
type Observer interface {
	// Request reports one answered request: the front end ("proxy",
	// "decisions" or "grpc"), the rule id ("" when none matched), the
	// decision ("allowed", "denied", "error"), the status and the time
	// taken.
	Request(frontend, rule, decision string, status int, d time.Duration)
}

type nopObserver struct{}

func (nopObserver) Request(string, string, string, int, time.Duration) {}
