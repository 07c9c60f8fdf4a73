package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// The harness runs every party of a measurement in a process of its own:
// the upstream, the bare httputil proxy, portcullis and the WebSocket
// clients of the idle-tunnel figures. Each is this same binary started with
// $PORTCULLIS_BENCH_ROLE set. A child talks to the harness in lines: it
// reads commands on stdin and answers on stdout with lines that start with
// "bench:"; anything else it prints is passed through to the harness's
// stderr. A child exits when its stdin closes, so it never outlives the
// harness (and on Linux the kernel kills it if the harness dies).

const roleEnv = "PORTCULLIS_BENCH_ROLE"

// child is a running role process.
type child struct {
	role string
	cmd  *exec.Cmd
	in   io.WriteCloser
	out  *bufio.Scanner
	mu   sync.Mutex
	done chan struct{}
}

// startChild starts role with the extra environment and waits for its
// "bench: ready" line, whose remaining fields it returns as key=value.
func startChild(ctx context.Context, exe, role string, env ...string) (*child, map[string]string, error) {
	if exe == "" {
		var err error
		if exe, err = os.Executable(); err != nil {
			return nil, nil, err
		}
	}
	cmd := exec.Command(exe)
	cmd.Env = append(append(os.Environ(), roleEnv+"="+role), env...)
	cmd.Stderr = &prefixWriter{prefix: "[" + role + "] ", w: os.Stderr}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, nil, err
	}
	c := &child{role: role, cmd: cmd, in: in, out: bufio.NewScanner(out), done: make(chan struct{})}
	c.out.Buffer(make([]byte, 64<<10), 1<<20)
	go func() { _ = cmd.Wait(); close(c.done) }()
	kv, err := c.answer(ctx, 2*time.Minute)
	if err != nil {
		c.stop()
		return nil, nil, fmt.Errorf("%s did not start: %w", role, err)
	}
	if len(kv) == 0 || kv[0] != "ready" {
		c.stop()
		return nil, nil, fmt.Errorf("%s: unexpected first answer %q", role, kv)
	}
	return c, fields(kv[1:]), nil
}

// ask sends one command line and returns the fields of the answer.
func (c *child) ask(ctx context.Context, timeout time.Duration, format string, args ...any) ([]string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, err := fmt.Fprintf(c.in, format+"\n", args...); err != nil {
		return nil, fmt.Errorf("%s: %w", c.role, err)
	}
	return c.answer(ctx, timeout)
}

// answer waits for the next "bench:" line.
func (c *child) answer(ctx context.Context, timeout time.Duration) ([]string, error) {
	type res struct {
		f   []string
		err error
	}
	ch := make(chan res, 1)
	go func() {
		for c.out.Scan() {
			line := c.out.Text()
			if f := strings.Fields(line); len(f) > 0 && f[0] == "bench:" {
				if len(f) > 1 && f[1] == "error" {
					ch <- res{err: fmt.Errorf("%s: %s", c.role, strings.Join(f[2:], " "))}
					return
				}
				ch <- res{f: f[1:]}
				return
			}
			fmt.Fprintf(os.Stderr, "[%s] %s\n", c.role, line)
		}
		ch <- res{err: fmt.Errorf("%s ended: %v", c.role, c.out.Err())}
	}()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case r := <-ch:
		return r.f, r.err
	case <-t.C:
		c.kill()
		return nil, fmt.Errorf("%s: no answer within %s", c.role, timeout)
	case <-ctx.Done():
		c.kill()
		return nil, ctx.Err()
	}
}

// stop closes stdin and waits for the child to exit (killing it after 10s).
func (c *child) stop() {
	c.in.Close()
	select {
	case <-c.done:
	case <-time.After(10 * time.Second):
		c.kill()
	}
}

func (c *child) kill() {
	if c.cmd.Process != nil {
		_ = c.cmd.Process.Kill()
	}
	<-c.done
}

func (c *child) pid() int { return c.cmd.Process.Pid }

// fields parses key=value words.
func fields(words []string) map[string]string {
	m := map[string]string{}
	for _, w := range words {
		if k, v, ok := strings.Cut(w, "="); ok {
			m[k] = v
		}
	}
	return m
}

// procStats is what a child reports about itself after two GCs.
type procStats struct {
	RSS        int64 // VmRSS, bytes
	Heap       int64 // runtime HeapAlloc, bytes (live after GC)
	Stack      int64 // runtime StackInuse, bytes
	Goroutines int
}

// stats asks a role process for its memory figures.
func (c *child) stats(ctx context.Context) (procStats, error) {
	f, err := c.ask(ctx, time.Minute, "stats")
	if err != nil {
		return procStats{}, err
	}
	m := fields(f)
	var s procStats
	s.Heap, _ = strconv.ParseInt(m["heap"], 10, 64)
	s.Stack, _ = strconv.ParseInt(m["stack"], 10, 64)
	s.Goroutines, _ = strconv.Atoi(m["goroutines"])
	s.RSS, err = rssOf(c.pid())
	return s, err
}

// rssOf reads VmRSS of a process from /proc.
func rssOf(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest)
			if len(f) >= 1 {
				kb, err := strconv.ParseInt(f[0], 10, 64)
				return kb << 10, err
			}
		}
	}
	return 0, errors.New("no VmRSS in /proc status")
}

// selfStats is the "stats" answer of a role: live heap and stacks after
// two collections, and the number of goroutines.
func selfStats() string {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return fmt.Sprintf("heap=%d stack=%d goroutines=%d", ms.HeapAlloc, ms.StackInuse, runtime.NumGoroutine())
}

// say writes one answer line.
var sayMu sync.Mutex

func say(format string, args ...any) {
	sayMu.Lock()
	defer sayMu.Unlock()
	fmt.Printf("bench: "+format+"\n", args...)
}

// serveCommands reads commands until stdin closes; handle answers each
// (with say). "stats" is answered for every role.
func serveCommands(handle func(cmd []string)) {
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		f := strings.Fields(in.Text())
		switch {
		case len(f) == 0:
		case f[0] == "stats":
			say("%s", selfStats())
		default:
			handle(f)
		}
	}
}

// prefixWriter prefixes each line of a child's stderr with its role.
type prefixWriter struct {
	prefix string
	w      io.Writer
	mu     sync.Mutex
	buf    []byte
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.buf = append(p.buf, b...)
	for {
		i := strings.IndexByte(string(p.buf), '\n')
		if i < 0 {
			break
		}
		fmt.Fprintf(p.w, "%s%s\n", p.prefix, p.buf[:i])
		p.buf = p.buf[i+1:]
	}
	return len(b), nil
}

// cpuTime returns the user+system CPU time a process has used so far, all
// its threads together (/proc/PID/stat; clock ticks of 10 ms).
func cpuTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, errors.New("unreadable /proc stat")
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, errors.New("short /proc stat")
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	const tick = 10 * time.Millisecond // USER_HZ is 100 on Linux
	return time.Duration(ut+st) * tick, nil
}

// cpuMeter measures the CPU time processes spend during a run.
type cpuMeter struct {
	pids  []int
	start []time.Duration
}

func meterCPU(pids ...int) *cpuMeter {
	pids = slices.DeleteFunc(slices.Clone(pids), func(p int) bool { return p == 0 })
	m := &cpuMeter{pids: pids, start: make([]time.Duration, len(pids))}
	for i, p := range pids {
		m.start[i], _ = cpuTime(p)
	}
	return m
}

// used returns the CPU time each process spent since meterCPU.
func (m *cpuMeter) used() []time.Duration {
	out := make([]time.Duration, len(m.pids))
	for i, p := range m.pids {
		now, _ := cpuTime(p)
		out[i] = now - m.start[i]
	}
	return out
}
