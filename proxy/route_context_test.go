package proxy

import (
	"context"
	"runtime"
	"testing"
)

type otherKey struct{}

// TestRouteContext: the route is the value of routeKey{}, every other key
// is the parent's, and a context derived from it (the transport's own
// cancel) is cancelled with the parent without a goroutine watching it.
func TestRouteContext(t *testing.T) {
	parent, cancel := context.WithCancel(context.WithValue(context.Background(), otherKey{}, "v"))
	rt := &route{}
	c := &routeContext{Context: parent, rt: rt}
	if got := c.Value(routeKey{}); got != rt {
		t.Errorf("Value(routeKey{}) = %v, want the route", got)
	}
	if got := c.Value(otherKey{}); got != "v" {
		t.Errorf("Value(otherKey{}) = %v, want the parent's v", got)
	}
	before := runtime.NumGoroutine()
	child, stop := context.WithCancelCause(c)
	defer stop(nil)
	if n := runtime.NumGoroutine(); n > before {
		t.Errorf("deriving a cancel context started %d goroutines", n-before)
	}
	cancel()
	<-child.Done()
	if child.Err() != context.Canceled {
		t.Errorf("child.Err() = %v, want context.Canceled", child.Err())
	}
}
