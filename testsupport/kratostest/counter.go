package kratostest

import (
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
)

// WhoamiCounter is a pass-through in front of a Kratos's public API that
// counts the /sessions/whoami calls reaching Kratos: what a test of
// coalesced session checks measures. Point the session authenticators'
// check_session_url at [WhoamiCounter.WhoamiURL].
type WhoamiCounter struct {
	*httptest.Server
	calls atomic.Int64
}

// NewWhoamiCounter starts a counter in front of the Kratos public API at
// public; the caller closes it.
func NewWhoamiCounter(public string) (*WhoamiCounter, error) {
	target, err := url.Parse(public)
	if err != nil {
		return nil, err
	}
	c := &WhoamiCounter{}
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.Transport = &http.Transport{MaxIdleConnsPerHost: 128}
	c.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/sessions/whoami") {
			c.calls.Add(1)
		}
		rp.ServeHTTP(w, r)
	}))
	return c, nil
}

// CountWhoami is [NewWhoamiCounter] in front of k for a test; the counter
// is closed when tb ends.
func (k *Kratos) CountWhoami(tb testing.TB) *WhoamiCounter {
	tb.Helper()
	c, err := NewWhoamiCounter(k.PublicURL())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(c.Close)
	return c
}

// WhoamiURL is the counted /sessions/whoami endpoint.
func (c *WhoamiCounter) WhoamiURL() string { return c.URL + "/sessions/whoami" }

// Calls is how many whoami calls have reached Kratos.
func (c *WhoamiCounter) Calls() int64 { return c.calls.Load() }
