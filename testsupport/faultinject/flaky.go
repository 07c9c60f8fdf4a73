package faultinject

import (
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
)

// Flaky is an API that answers its first requests with an error status
// alone (a 502 or 503 from a load balancer in front of a service that is
// starting) and then answers as a working one ([FlakyAPI] says how many
// and how). It is closed when the test ends.
type Flaky struct {
	URL      string
	attempts atomic.Int32
}

// Attempts is the number of requests the API has received, failed or not.
func (f *Flaky) Attempts() int { return int(f.attempts.Load()) }

// FlakyAPI starts a [Flaky] API on loopback that answers its first
// failures requests with status and hands every later one to then.
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
