package proctest

import (
	"os/exec"
	"sync"
)

// Restartable is the process of a server that tests stop and start again
// on the same ports and files, one run at a time. The zero value holds no
// process; its methods are safe for concurrent use.
type Restartable struct {
	mu   sync.Mutex
	proc *Process // nil while stopped
	out  *Buffer  // the last run's output
}

// Restart stops the running process, if any, and launches cmd as [Launch]
// does. The process is held only if it became ready; the run's output
// (o.Output, a new [Buffer] when nil) is kept either way, for
// [Restartable.Output].
func (r *Restartable) Restart(cmd *exec.Cmd, o Options) error {
	r.Stop()
	if o.Output == nil {
		o.Output = &Buffer{}
	}
	p, err := Launch(cmd, o)
	r.mu.Lock()
	r.proc, r.out = p, o.Output
	r.mu.Unlock()
	return err
}

// Stop kills the running process and waits for it to exit; without one it
// does nothing.
func (r *Restartable) Stop() {
	r.mu.Lock()
	p := r.proc
	r.proc = nil
	r.mu.Unlock()
	if p != nil {
		p.Kill()
	}
}

// Running reports whether a process was started and not stopped since.
func (r *Restartable) Running() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.proc != nil
}

// Output returns what the last run wrote ("" before the first run).
func (r *Restartable) Output() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.out == nil {
		return ""
	}
	return r.out.String()
}
