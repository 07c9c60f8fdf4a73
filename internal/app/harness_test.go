package app_test

import (
	"testing"
	"time"

	"github.com/portcullis-proxy/portcullis/testsupport/servertest"
)

func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	// 30 s: generous on a loaded two-core machine, where a poll that reads
	// 16 MiB under the race detector takes seconds.
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in time")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// startServer starts the whole server with the configuration cfgYAML (on
// loopback, free ports, unless it has a serve block) and the rules, polled
// every 20ms.
func startServer(t *testing.T, cfgYAML, rulesYAML string) *servertest.Server {
	t.Helper()
	return servertest.Start(t, servertest.Config{YAML: cfgYAML, Rules: rulesYAML, PollInterval: 20 * time.Millisecond})
}
