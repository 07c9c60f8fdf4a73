package proctest_test

import (
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/portcullis-proxy/portcullis/testsupport/proctest"
)

func TestBufferKeepsTheTail(t *testing.T) {
	b := proctest.NewBuffer(8)
	b.Write([]byte("0123456789"))
	b.Write([]byte("ab"))
	if got := b.String(); got != "456789ab" {
		t.Errorf("String() = %q, want the last 8 bytes 456789ab", got)
	}
	if got := b.Tail(3); got != "…9ab" {
		t.Errorf("Tail(3) = %q, want …9ab", got)
	}
	var all proctest.Buffer
	all.Write([]byte("0123456789"))
	if got := all.Tail(20); got != "0123456789" {
		t.Errorf("zero Buffer Tail(20) = %q, want everything", got)
	}
}

func TestLaunchReportsAnExitBeforeReady(t *testing.T) {
	_, err := proctest.Launch(exec.Command("sh", "-c", "echo starting; exit 3"), proctest.Options{Ready: func() bool { return false }})
	var nr *proctest.NotReadyError
	if !errors.As(err, &nr) || !nr.Exited || !strings.Contains(nr.Output, "starting") {
		t.Fatalf("Launch = %v, want a NotReadyError of an exit with the output", err)
	}
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 3 {
		t.Errorf("the error does not carry exit status 3: %v", err)
	}
}

func TestLaunchKillsWhatIsNotReadyInTime(t *testing.T) {
	start := time.Now()
	_, err := proctest.Launch(exec.Command("sleep", "30"), proctest.Options{Ready: func() bool { return false }, Timeout: 200 * time.Millisecond})
	var nr *proctest.NotReadyError
	if !errors.As(err, &nr) || nr.Exited {
		t.Fatalf("Launch = %v, want a NotReadyError for the timeout", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("Launch returned after %v", d)
	}
}

func TestStopSignalsThenKills(t *testing.T) {
	p, err := proctest.Launch(exec.Command("sleep", "30"), proctest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	err = p.Stop(syscall.SIGTERM, 10*time.Second)
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGTERM {
		t.Errorf("Stop = %v, want the process ended by SIGTERM", err)
	}
	select {
	case <-p.Done():
	default:
		t.Error("Done is open after Stop")
	}
	// A process that ignores the signal is killed once the grace ends.
	p, err = proctest.Launch(exec.Command("sh", "-c", "trap '' TERM; echo ready; sleep 30"), proctest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for !strings.Contains(p.Output(), "ready") {
		time.Sleep(10 * time.Millisecond)
	}
	start := time.Now()
	if err := p.Stop(syscall.SIGTERM, 300*time.Millisecond); !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Errorf("Stop = %v, want SIGKILL after the grace", err)
	}
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Errorf("killed after %v, before the grace", d)
	}
	if err := p.Signal(os.Interrupt); err != nil {
		t.Errorf("Signal to an exited process = %v, want nil", err)
	}
}

func TestHTTPReadyWantsEvery200(t *testing.T) {
	status := http.StatusServiceUnavailable
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/a" {
			w.WriteHeader(http.StatusOK)
			return
		}
		w.WriteHeader(status)
	}))
	defer srv.Close()
	ready := proctest.HTTPReady(srv.URL+"/a", srv.URL+"/b")
	if ready() {
		t.Error("ready while /b answers 503")
	}
	status = http.StatusOK
	if !ready() {
		t.Error("not ready when both answer 200")
	}
	if proctest.HTTPReady("http://127.0.0.1:" + strconv.Itoa(proctest.FreePort(t)))() {
		t.Error("ready where nothing listens")
	}
}

func TestFreePortsAreDistinctAndFree(t *testing.T) {
	ports := proctest.FreePorts(t, 4)
	seen := map[int]bool{}
	for _, p := range ports {
		if seen[p] {
			t.Fatalf("port %d twice in %v", p, ports)
		}
		seen[p] = true
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			t.Fatalf("port %d is not free: %v", p, err)
		}
		if !proctest.Listening(l.Addr().String()) {
			t.Errorf("Listening(%s) = false with a listener on it", l.Addr())
		}
		l.Close()
	}
}
