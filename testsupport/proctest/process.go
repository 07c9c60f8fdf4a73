package proctest

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// Options configure how [Launch] and [Start] run a child process. The zero
// value starts it and returns at once, its whole output kept.
type Options struct {
	// Name labels the process in messages (default: the command's base
	// name).
	Name string
	// Ready reports whether the process serves; it is polled every Poll
	// (default 50ms) until it reports true, the process exits or Timeout
	// (default 30s) passes. Nil: ready once started.
	Ready   func() bool
	Poll    time.Duration
	Timeout time.Duration
	// Output receives the process's stdout and stderr (default: a new
	// [Buffer] that keeps everything).
	Output *Buffer
	// ShowOnFailure is how many bytes of the output's tail [Start] logs
	// when the test failed (0: none).
	ShowOnFailure int
}

// Process is a running (or exited) child process.
type Process struct {
	name string
	cmd  *exec.Cmd
	out  *Buffer
	done chan struct{}
	err  error // set before done closes
}

// NotReadyError is [Launch]'s error for a process that exited, or did not
// become ready in time; Output is the tail of what it wrote.
type NotReadyError struct {
	Name   string
	Exited bool
	Err    error // the exit status, when it exited
	Output string
}

func (e *NotReadyError) Error() string {
	what := "was not ready in time"
	if e.Exited {
		what = fmt.Sprintf("exited: %v", e.Err)
	}
	return fmt.Sprintf("%s %s\n--- %s output ---\n%s", e.Name, what, e.Name, e.Output)
}

func (e *NotReadyError) Unwrap() error { return e.Err }

// Launch starts cmd, its stdout and stderr into o.Output, and waits until
// o.Ready reports true. A process that exits first, or is not ready within
// o.Timeout (it is then killed), is a [*NotReadyError]. The caller stops
// the process it returns.
func Launch(cmd *exec.Cmd, o Options) (*Process, error) {
	if o.Name == "" {
		o.Name = filepath.Base(cmd.Path)
	}
	if o.Poll <= 0 {
		o.Poll = 50 * time.Millisecond
	}
	if o.Timeout <= 0 {
		o.Timeout = 30 * time.Second
	}
	if o.Output == nil {
		o.Output = &Buffer{}
	}
	p := &Process{name: o.Name, cmd: cmd, out: o.Output, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	if cmd.SysProcAttr == nil {
		setProcAttr(cmd)
	}
	if cmd.WaitDelay == 0 {
		// A child of the process that outlives it would hold the output
		// pipe open, and Wait with it.
		cmd.WaitDelay = 2 * time.Second
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", o.Name, err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	if o.Ready == nil {
		return p, nil
	}
	deadline := time.Now().Add(o.Timeout)
	for !o.Ready() {
		select {
		case <-p.done:
			return nil, &NotReadyError{Name: o.Name, Exited: true, Err: p.err, Output: p.out.Tail(16 << 10)}
		case <-time.After(o.Poll):
		}
		if time.Now().After(deadline) {
			p.Kill()
			return nil, &NotReadyError{Name: o.Name, Output: p.out.Tail(16 << 10)}
		}
	}
	return p, nil
}

// Start is [Launch] for a test: a process that does not start or become
// ready fails tb. When tb ends the process gets stop (its graceful-stop
// signal; [os.Kill] for none), then SIGKILL after 10s, and the tail of its
// output is logged if tb failed (o.ShowOnFailure bytes).
func Start(tb testing.TB, cmd *exec.Cmd, stop os.Signal, o Options) *Process {
	tb.Helper()
	p, err := Launch(cmd, o)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		_ = p.Stop(stop, 10*time.Second)
		if tb.Failed() && o.ShowOnFailure > 0 {
			tb.Logf("--- %s output ---\n%s", p.name, p.out.Tail(o.ShowOnFailure))
		}
	})
	return p
}

// Signal sends sig to the process (to it alone, by its pid). A process
// that has exited is not an error.
func (p *Process) Signal(sig os.Signal) error {
	err := p.cmd.Process.Signal(sig)
	if errors.Is(err, os.ErrProcessDone) {
		return nil
	}
	return err
}

// Stop sends sig and waits up to grace for the process to exit, then kills
// it. It returns how the process exited ([Process.Err]).
func (p *Process) Stop(sig os.Signal, grace time.Duration) error {
	_ = p.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(grace):
		p.Kill()
	}
	return p.Err()
}

// Kill kills the process and waits until it has exited.
func (p *Process) Kill() {
	_ = p.cmd.Process.Kill()
	<-p.done
}

// Done is closed once the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Err waits for the process to exit and returns its exit status (nil for
// status 0).
func (p *Process) Err() error {
	<-p.done
	return p.err
}

// Output returns what the process wrote so far (the tail its Buffer keeps).
func (p *Process) Output() string { return p.out.String() }

// HTTPReady returns a readiness check that reports true once every one of
// urls answers GET with 200 (each try bounded to 2s).
func HTTPReady(urls ...string) func() bool {
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	return func() bool {
		for _, u := range urls {
			res, err := client.Get(u)
			if err != nil {
				return false
			}
			res.Body.Close()
			if res.StatusCode != http.StatusOK {
				return false
			}
		}
		return true
	}
}
