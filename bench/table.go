package main

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"time"
)

// row is one line of the result table.
type row struct {
	fig  string
	what string
	got  string // portcullis's figure
	ref  string // the reference it is divided by
	// ratio holds the per-round ratios; the table shows their median.
	ratio []float64
	// target is the goal: a minimum ratio, or with inverse a maximum of
	// absolute. 0 means the row has no target.
	target     float64
	targetText string
	inverse    bool
	absolute   float64
	failed     bool
}

// table collects rows and the conditions of the run.
type table struct {
	rows    []row
	started time.Time
	load    []string
	machine string
	commit  string
}

func newTable(root string) *table {
	t := &table{started: time.Now(), machine: machine()}
	if out, err := exec.Command("git", "-C", root, "describe", "--always", "--dirty").Output(); err == nil {
		t.commit = strings.TrimSpace(string(out))
	}
	return t
}

func (t *table) add(r row) { t.rows = append(t.rows, r) }

func (t *table) fail(fig, what string, err error) {
	msg := strings.ReplaceAll(err.Error(), "\n", " ")
	if len(msg) > 300 {
		msg = msg[:300] + "…"
	}
	t.rows = append(t.rows, row{fig: fig, what: what, got: "FAILED: " + msg, failed: true})
}

// noteLoad records the load average at a point of the run.
func (t *table) noteLoad(when string) {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return
	}
	f := strings.Fields(string(b))
	if len(f) >= 3 {
		t.load = append(t.load, fmt.Sprintf("%s %s %s %s", when, f[0], f[1], f[2]))
	}
}

// met reports whether the row reaches its target ("" without one).
func (r row) met() string {
	switch {
	case r.failed:
		return "no"
	case r.target == 0:
		return ""
	case r.inverse && r.absolute <= r.target:
		return "yes"
	case r.inverse:
		return "no"
	case len(r.ratio) > 0 && median(r.ratio) >= r.target:
		return "yes"
	}
	return "no"
}

func (r row) ratioText() string {
	if len(r.ratio) == 0 {
		return ""
	}
	m := median(r.ratio)
	if len(r.ratio) == 1 {
		return fmt.Sprintf("%.2f", m)
	}
	lo, hi := r.ratio[0], r.ratio[0]
	for _, v := range r.ratio {
		lo, hi = min(lo, v), max(hi, v)
	}
	return fmt.Sprintf("%.2f (%.2f–%.2f)", m, lo, hi)
}

// markdown renders the table with the conditions of the run.
func (t *table) markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Taken %s on %s; commit %s; %s.\n", t.started.Format("2006-01-02 15:04 MST"), t.machine, t.commit, runtime.Version())
	fmt.Fprintf(&b, "Load average (1/5/15 min): %s.\n\n", strings.Join(t.load, "; "))
	b.WriteString("| # | figure | portcullis | reference | ratio (median, range) | target | met |\n")
	b.WriteString("|---|---|---|---|---|---|---|\n")
	esc := func(s string) string { return strings.ReplaceAll(s, "|", "\\|") }
	for _, r := range t.rows {
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s |\n", r.fig, esc(r.what), esc(r.got), esc(r.ref), r.ratioText(), esc(r.targetText), r.met())
	}
	return b.String()
}

// machine describes the CPU, cores, memory and kernel.
func machine() string {
	cpu := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "model name"); ok {
				cpu = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	mem := ""
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		f := strings.Fields(string(b))
		if len(f) >= 2 && f[0] == "MemTotal:" {
			var kb int64
			fmt.Sscan(f[1], &kb)
			mem = fmt.Sprintf(", %.0f GiB", float64(kb)/(1<<20))
		}
	}
	kernel := ""
	if out, err := exec.Command("uname", "-sr").Output(); err == nil {
		kernel = ", " + strings.TrimSpace(string(out))
	}
	return fmt.Sprintf("%s × %d%s%s", cpu, runtime.NumCPU(), mem, kernel)
}
