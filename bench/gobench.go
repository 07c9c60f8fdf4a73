package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// goBench is one line of `go test -bench` output.
type goBench struct {
	Name    string
	NsPerOp float64
	Metrics map[string]float64 // unit → value (B/op, allocs/op, custom)
}

// goBenchmarks are the `go test` benchmarks figure 8 reads: rule matching
// and the allocations of the hot paths, each beside the code it measures.
var goBenchmarks = []struct {
	pkg, pattern string
	kratos       bool
}{
	{"./rules/", "^BenchmarkMatch$", false},
	{"./proxy/", "^(BenchmarkProxyRequest|BenchmarkDecision|BenchmarkTracing)$", false},
	{"./proxy/", "^BenchmarkDecisionSession$", true},
	{"./authenticators/", "^BenchmarkCookieSession$", true},
}

var benchLine = regexp.MustCompile(`^(Benchmark\S+?)(?:-\d+)?\s+(\d+)\s+(.*)$`)

// runGoBenchmarks runs the benchmarks of figure 8 and returns their lines.
func runGoBenchmarks(ctx context.Context, root string, withKratos bool, benchtime string) ([]goBench, error) {
	var all []goBench
	for _, gb := range goBenchmarks {
		if gb.kratos && !withKratos {
			continue
		}
		ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
		cmd := exec.CommandContext(ctx, "go", "test", "-run", "^$", "-bench", gb.pattern, "-benchmem",
			"-benchtime", benchtime, "-count", "1", gb.pkg)
		cmd.Dir = root
		var out bytes.Buffer
		cmd.Stdout = &out
		cmd.Stderr = os.Stderr
		err := cmd.Run()
		cancel()
		if err != nil {
			return all, fmt.Errorf("go test -bench %s %s: %v\n%s", gb.pattern, gb.pkg, err, out.String())
		}
		all = append(all, parseGoBench(out.String())...)
	}
	return all, nil
}

func parseGoBench(s string) []goBench {
	var out []goBench
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		m := benchLine.FindStringSubmatch(strings.TrimSpace(sc.Text()))
		if m == nil {
			continue
		}
		b := goBench{Name: m[1], Metrics: map[string]float64{}}
		f := strings.Fields(m[3])
		for i := 0; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				continue
			}
			if f[i+1] == "ns/op" {
				b.NsPerOp = v
			}
			b.Metrics[f[i+1]] = v
		}
		out = append(out, b)
	}
	return out
}

// findBench returns the benchmark whose name is name.
func findBench(bs []goBench, name string) (goBench, bool) {
	for _, b := range bs {
		if b.Name == name {
			return b, true
		}
	}
	return goBench{}, false
}
