package app_test

import (
	"bufio"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-proxy/portcullis/testsupport/handlertest"
	"github.com/portcullis-proxy/portcullis/testsupport/servertest"
)

// TestStreamThroughTheServer: the whole server, with a 1 s write timeout,
// keeps an event stream open to its rule's 3 s max lifetime and ends it
// with the final event; the admin-facing registry saw it while it ran.
func TestStreamThroughTheServer(t *testing.T) {
	up := servertest.EventStream(t)
	s := startServer(t, openConfig+"serve:\n  proxy: {host: 127.0.0.1, port: 0, timeout: {write: 1s}}\n  api: {host: 127.0.0.1, port: 0}\n  prometheus: {host: 127.0.0.1, port: 0}\n",
		handlertest.Rules(handlertest.Rule{ID: "clock", URL: "<https?>://<[^/]+>/events", Mutators: []string{"header"}, Upstream: up.URL,
			More: []string{"websocket: {max_lifetime: 3s}"}}))
	start := time.Now()
	res, err := http.Get(s.URL() + "/events")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	sc := bufio.NewScanner(res.Body)
	var last, event string
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "event: ") {
			event = line
		}
		if strings.HasPrefix(line, "data: ") {
			last = line
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("stream cut after %v: %v", time.Since(start), err)
	}
	if d := time.Since(start); d < 3*time.Second {
		t.Errorf("ended after %v, before max_lifetime", d)
	}
	if event != "event: portcullis-close" || !strings.Contains(last, `"reason":"max_lifetime"`) {
		t.Errorf("last event %q / %q, want the portcullis-close event", event, last)
	}
}
