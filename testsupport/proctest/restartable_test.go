package proctest_test

import (
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-proxy/portcullis/testsupport/proctest"
)

func TestRestartableRunsOneProcessAtATime(t *testing.T) {
	var r proctest.Restartable
	t.Cleanup(r.Stop)
	if r.Running() || r.Output() != "" {
		t.Fatalf("zero Restartable: Running %v, Output %q; want neither", r.Running(), r.Output())
	}
	r.Stop() // nothing to stop

	run := func(name string) *exec.Cmd { return exec.Command("sh", "-c", "echo "+name+"; exec sleep 30") }
	first := run("first")
	if err := r.Restart(first, proctest.Options{}); err != nil {
		t.Fatal(err)
	}
	if !r.Running() {
		t.Fatal("not Running after Restart")
	}
	if err := r.Restart(run("second"), proctest.Options{}); err != nil {
		t.Fatal(err)
	}
	if first.ProcessState == nil {
		t.Error("the first run still runs after the second started")
	}
	for !strings.Contains(r.Output(), "second") {
		time.Sleep(10 * time.Millisecond)
	}
	if strings.Contains(r.Output(), "first") {
		t.Errorf("Output %q holds the first run's, want the second's alone", r.Output())
	}
	r.Stop()
	if r.Running() {
		t.Error("Running after Stop")
	}
	if !strings.Contains(r.Output(), "second") {
		t.Errorf("Output after Stop = %q, want the last run's", r.Output())
	}

	// A run that does not become ready is not held, and its output is.
	err := r.Restart(exec.Command("sh", "-c", "echo broken; exit 2"), proctest.Options{Ready: func() bool { return false }})
	var nr *proctest.NotReadyError
	if !errors.As(err, &nr) {
		t.Fatalf("Restart = %v, want a NotReadyError", err)
	}
	if r.Running() || !strings.Contains(r.Output(), "broken") {
		t.Errorf("after a failed start: Running %v, Output %q; want false and its output", r.Running(), r.Output())
	}
}
