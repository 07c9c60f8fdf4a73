package faultinject

import (
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
)

// Flaky is an API that answers its first failures requests with status
// alone (a 502 or 503 from a load balancer in front of a service that is
// starting) and hands every later one to then. Attempts counts every
// request it received, failed or not. It is closed when the test ends.
type Flaky struct {
	URL      string
	attempts atomic.Int32
}

// Attempts is the number of requests the API has received.
func (f *Flaky) Attempts() int { return int(f.attempts.Load()) }

// FlakyAPI starts a [Flaky] API on loopback.
func FlakyAPI(t testing.TB, failures, status int, then http.Handler) *Flaky {
	t.Helper()
	f := &Flaky{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if int(f.attempts.Add(1)) <= failures {
			w.WriteHeader(status)
			return
		}
		then.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	f.URL = srv.URL
	return f
}
