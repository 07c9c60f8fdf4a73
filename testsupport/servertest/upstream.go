package servertest

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// EventStream starts an event-stream upstream on loopback: every request
// gets text/event-stream with one event ("data: tick 0", "data: tick 1",
// …) every 100ms until the client goes away. It is closed when tb ends.
func EventStream(tb testing.TB) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		for i := 0; ; i++ {
			fmt.Fprintf(w, "data: tick %d\n\n", i)
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}))
	tb.Cleanup(srv.Close)
	return srv
}
