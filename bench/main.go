// Command bench measures portcullis side by side with the references it
// is judged against, all on loopback and in the same run: a bare
// httputil.ReverseProxy (the ceiling of any net/http proxy here), a direct
// WebSocket connection, and for session cases a real Ory Kratos. It prints
// a table of the figures of the performance issue, each with its reference
// and the ratio. See bench/README.md.
//
//	go run ./bench              # or: make bench
//	go run ./bench -h           # options
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/portcullis-proxy/portcullis/testsupport/kratostest"
)

// options are the command's flags.
type options struct {
	duration      time.Duration
	wsDuration    time.Duration
	rounds        int
	connections   int
	threads       int
	tunnels       int
	revokeTunnels int
	idleRounds    int
	kratos        bool
	install       bool
	logLevel      string
	logFormat     string
	only          string
	profileDir    string
	benchtime     string
	out           string
	timeout       time.Duration
	baseline      string
	variants      string
	oathkeeper    string
	keep          bool
}

func main() {
	limitNoFile()
	if role := os.Getenv(roleEnv); role != "" {
		if err := runRole(role); err != nil {
			say("error %v", err)
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		return
	}
	var o options
	flag.DurationVar(&o.duration, "duration", 5*time.Second, "length of one wrk run (HTTP figures 1-3)")
	flag.DurationVar(&o.wsDuration, "ws-duration", 3*time.Second, "length of one WebSocket run (figures 4-5)")
	flag.IntVar(&o.rounds, "rounds", 3, "interleaved rounds per figure; figures are medians over rounds")
	flag.IntVar(&o.connections, "connections", 32, "wrk connections")
	flag.IntVar(&o.threads, "threads", 1, "wrk threads")
	flag.IntVar(&o.tunnels, "tunnels", 5000, "idle tunnels for figures 6-7, idle event streams for figure 10")
	flag.IntVar(&o.idleRounds, "idle-rounds", 1, "rounds of the idle section (figures 6, 7, 10); with -baseline each round measures both builds, in turn")
	flag.IntVar(&o.revokeTunnels, "revoke-tunnels", 1000, "tunnels per replica for figure 9 (three replicas)")
	flag.BoolVar(&o.kratos, "kratos", true, "start a real Ory Kratos for the session figures (3, 7)")
	flag.BoolVar(&o.install, "install", true, "install wrk with apt-get and build Kratos when missing")
	flag.StringVar(&o.logLevel, "log-level", "info", "log.level of portcullis and Oathkeeper (their logs go to files)")
	flag.StringVar(&o.logFormat, "log-format", "text", "log.format of portcullis and Oathkeeper: text (the default of both) or json")
	flag.StringVar(&o.only, "only", "http,ws,idle,go,revoke", "sections to run: http (1-3, 11), ws (4-5), idle (6-7, 10), go (8), revoke (9)")
	flag.StringVar(&o.profileDir, "profile", "", "write CPU and allocation profiles of portcullis (round 1 of each figure) into this directory")
	flag.StringVar(&o.benchtime, "benchtime", "1s", "go test -benchtime for figure 8")
	flag.StringVar(&o.out, "out", "", "also write the table here (default .build/bench/latest.md)")
	flag.DurationVar(&o.timeout, "timeout", 30*time.Minute, "upper bound of the whole run")
	flag.StringVar(&o.oathkeeper, "oathkeeper", "auto", "run Ory Oathkeeper v0.40.9 side by side: auto (when scripts/build-oathkeeper.sh built it), on (build it when missing), off")
	flag.BoolVar(&o.keep, "keep", false, "keep the run's directory (configurations and logs) and print where it is")
	flag.StringVar(&o.variants, "variants", "", "only these HTTP variants (comma-separated: direct, httputil, httputil+pool, proxy, proxy+logbuf, decisions, proxy+tracing, decisions+tracing, session-hit, session-off, and proxy, proxy+logbuf, decisions, session-hit @base)")
	flag.StringVar(&o.baseline, "baseline", "", "a bench binary built from another commit: its portcullis is measured in the same rounds (variants proxy@base, proxy+logbuf@base, decisions@base, session-hit@base, tunnel@base; in the idle section portcullis@base) to compare a change")
	flag.Parse()

	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// limitNoFile sets the open-file limit to the hard limit, but never above
// 20,000: each process of the harness holds at most about 10,000 sockets.
func limitNoFile() {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return
	}
	want := min(l.Max, 20000)
	if l.Cur != want {
		l.Cur = want
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l)
	}
}

// env is what a run has started: processes, addresses, the session.
type env struct {
	o        options
	root     string
	dir      string
	upstream *roleProc
	upAddr   string
	kratos   *kratostest.Kratos
	session  kratostest.Identity
	table    *table
	base     *roleProc // portcullis from the -baseline binary, or nil
	okBin    string    // the Oathkeeper binary, "" when it does not run
	ok       *oathkeeperProc
	pooled   *roleProc // httputil with a buffer pool
	buffered *roleProc // portcullis with log.buffer on (figure 1)
	// polled is portcullis with the poll relay (websocket_relay: poll),
	// for figures 4-5's poll rows; nil outside the ws section.
	polled *roleProc
	// baseBuffered is the -baseline build with log.buffer on.
	baseBuffered *roleProc
	// traced is portcullis with tracing on (figure 11), exporting to
	// collector.
	traced, collector *roleProc
}

func run(o options) error {
	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	defer cancel()
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	root, err := repoRoot()
	if err != nil {
		return err
	}
	sections := map[string]bool{}
	for _, s := range strings.Split(o.only, ",") {
		sections[strings.TrimSpace(s)] = true
	}
	if sections["http"] {
		if err := ensureWrk(o.install); err != nil {
			return err
		}
	}
	needKratos := o.kratos && (sections["http"] || sections["idle"] || sections["go"] || sections["revoke"])
	if needKratos {
		if err := ensureKratos(root); err != nil {
			if !o.install {
				return err
			}
			return fmt.Errorf("building Kratos: %w (or run with -kratos=false)", err)
		}
	}
	okBin, err := ensureOathkeeper(root, o.oathkeeper)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "portcullis-bench-")
	if err != nil {
		return err
	}
	if o.keep {
		defer fmt.Fprintln(os.Stderr, "bench: configurations and logs kept in", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	if o.profileDir != "" {
		if err := os.MkdirAll(o.profileDir, 0o755); err != nil {
			return err
		}
	}

	e := &env{o: o, root: root, dir: dir, table: newTable(root), okBin: okBin}
	e.table.noteLoad("start")

	e.upstream, err = startRole(ctx, "upstream")
	if err != nil {
		return err
	}
	defer e.upstream.stop()
	e.upAddr = e.upstream.info["addr"]

	var errs []error
	if sections["http"] || sections["ws"] {
		if o.kratos && sections["http"] {
			k, err := kratostest.New(kratostest.Options{SessionLifespan: time.Hour})
			if err != nil {
				return fmt.Errorf("start Kratos: %w", err)
			}
			e.kratos = k
			if e.session, err = k.Register(); err != nil {
				k.Close()
				return err
			}
		}
		if err := e.httpAndWS(ctx, sections); err != nil {
			errs = append(errs, err)
		}
		if e.kratos != nil {
			e.kratos.Close()
			e.kratos = nil
		}
	}
	if sections["idle"] && ctx.Err() == nil {
		if err := e.idle(ctx); err != nil {
			errs = append(errs, fmt.Errorf("figures 6-7: %w", err))
			e.table.fail("6", "idle tunnels", err)
		}
	}
	if sections["revoke"] && ctx.Err() == nil {
		if err := e.revoke(ctx); err != nil {
			errs = append(errs, fmt.Errorf("figure 9: %w", err))
		}
	}
	if sections["go"] && ctx.Err() == nil {
		if err := e.goFigures(ctx, needKratos); err != nil {
			errs = append(errs, fmt.Errorf("figure 8: %w", err))
			e.table.fail("8", "go test benchmarks", err)
		}
	}
	e.table.noteLoad("end")

	md := e.table.markdown()
	fmt.Println()
	fmt.Print(md)
	out := o.out
	if out == "" {
		out = filepath.Join(root, ".build", "bench", "latest.md")
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err == nil {
		if err := os.WriteFile(out, []byte(md), 0o644); err == nil {
			fmt.Fprintln(os.Stderr, "bench: table written to", out)
		}
	}
	return errors.Join(errs...)
}

// roleProc is a started role with its ready fields.
type roleProc struct {
	*child
	info map[string]string
}

func startRole(ctx context.Context, role string, env ...string) (*roleProc, error) {
	return startRoleFrom(ctx, "", role, env...)
}

// startRoleFrom starts a role from the binary exe ("" for this one).
func startRoleFrom(ctx context.Context, exe, role string, env ...string) (*roleProc, error) {
	c, info, err := startChild(ctx, exe, role, env...)
	if err != nil {
		return nil, err
	}
	return &roleProc{child: c, info: info}, nil
}

// startPortcullis writes the configuration and starts portcullis.
func (e *env) startPortcullis(ctx context.Context, name, whoami string) (*roleProc, error) {
	return e.startPortcullisFrom(ctx, "", name, whoami, extras{})
}

// startPortcullisFrom starts portcullis from the bench binary exe, with
// the configuration's extras x.
func (e *env) startPortcullisFrom(ctx context.Context, exe, name, whoami string, x extras) (*roleProc, error) {
	d := filepath.Join(e.dir, name)
	if err := os.MkdirAll(d, 0o700); err != nil {
		return nil, err
	}
	cfg, err := writeConfig(d, "http://"+e.upAddr, whoami, e.o.logLevel, e.o.logFormat, lifetimeFor(e.o.tunnels).String(), x)
	if err != nil {
		return nil, err
	}
	env := []string{envConfig + "=" + cfg, envLogFile + "=" + filepath.Join(d, "portcullis.log")}
	if e.o.profileDir != "" {
		env = append(env, envPprof+"=1")
	}
	return startRoleFrom(ctx, exe, "portcullis", env...)
}

// httpAndWS measures figures 1-5 against long-running processes.
func (e *env) httpAndWS(ctx context.Context, sections map[string]bool) error {
	whoami := ""
	if e.kratos != nil {
		whoami = e.kratos.WhoamiURL()
	}
	pc, err := e.startPortcullis(ctx, "main", whoami)
	if err != nil {
		return err
	}
	defer pc.stop()
	if e.okBin != "" {
		if e.ok, err = startOathkeeper(ctx, e.okBin, filepath.Join(e.dir, "oathkeeper"), "http://"+e.upAddr, whoami, e.o.logLevel, e.o.logFormat); err != nil {
			return fmt.Errorf("oathkeeper: %w", err)
		}
		defer e.ok.stop()
	}
	if e.o.baseline != "" {
		if e.base, err = e.startPortcullisFrom(ctx, e.o.baseline, "base", whoami, extras{}); err != nil {
			return fmt.Errorf("baseline: %w", err)
		}
		defer e.base.stop()
		if sections["http"] {
			// The baseline with its log buffered, for figure 1's
			// buffered row.
			if e.baseBuffered, err = e.startPortcullisFrom(ctx, e.o.baseline, "base-logbuf", whoami, extras{logBuffer: benchLogBuffer}); err != nil {
				return fmt.Errorf("baseline log.buffer: %w", err)
			}
			defer e.baseBuffered.stop()
		}
	}
	huEnv := []string{envUpstream + "=http://" + e.upAddr}
	if e.o.profileDir != "" {
		huEnv = append(huEnv, envPprof+"=1")
	}
	hu, err := startRole(ctx, "httputil", huEnv...)
	if err != nil {
		return err
	}
	defer hu.stop()
	if sections["http"] {
		// A stronger ceiling for the context rows: httputil with a pool
		// of copy buffers, as portcullis has.
		if e.pooled, err = startRole(ctx, "httputil", append(huEnv, envPool+"=1")...); err != nil {
			return err
		}
		defer e.pooled.stop()
		// The same portcullis with its log buffered (log.buffer).
		if e.buffered, err = e.startPortcullisFrom(ctx, "", "logbuf", whoami, extras{logBuffer: benchLogBuffer}); err != nil {
			return fmt.Errorf("log.buffer: %w", err)
		}
		defer e.buffered.stop()
		// Figure 11: the same portcullis with tracing on, every request
		// sampled, its spans exported to a collector on loopback.
		if e.collector, err = startRole(ctx, "collector"); err != nil {
			return fmt.Errorf("collector: %w", err)
		}
		defer e.collector.stop()
		if e.traced, err = e.startPortcullisFrom(ctx, "", "tracing", whoami, extras{otlp: "http://" + e.collector.info["addr"] + "/v1/traces"}); err != nil {
			return fmt.Errorf("tracing: %w", err)
		}
		defer e.traced.stop()
	}

	if sections["ws"] {
		if e.polled, err = e.startPortcullisFrom(ctx, "", "poll", whoami, extras{relay: "poll"}); err != nil {
			return fmt.Errorf("poll relay: %w", err)
		}
		defer e.polled.stop()
	}

	var errs []error
	if sections["http"] {
		if err := e.httpFigures(ctx, pc, hu); err != nil {
			errs = append(errs, fmt.Errorf("figures 1-3: %w", err))
			e.table.fail("1", "HTTP", err)
		}
	}
	if sections["ws"] && ctx.Err() == nil {
		if err := e.wsFigures(ctx, pc, hu); err != nil {
			errs = append(errs, fmt.Errorf("figures 4-5: %w", err))
			e.table.fail("4", "WebSocket", err)
		}
	}
	return errors.Join(errs...)
}

// httpVariant is one thing wrk loads.
type httpVariant struct {
	name    string
	proc    *roleProc // the process serving url (nil: pid)
	pid     int
	url     string
	headers map[string]string
	profile string // CPU/alloc profile target in round 1 ("" none)
	// spans: the variant is traced; the collector's span count is read
	// around each run.
	spans bool
}

// httpFigures: 1 proxy vs httputil, 2 decisions vs httputil, 3 decisions
// with a Kratos session (cache hit, cache off) vs figure 2.
func (e *env) httpFigures(ctx context.Context, pc, hu *roleProc) error {
	o := wrkOptions{Threads: e.o.threads, Connections: e.o.connections, Duration: e.o.duration}
	px, api := pc.info["proxy"], pc.info["api"]
	vs := []httpVariant{
		{name: "direct", proc: e.upstream, url: "http://" + e.upAddr + pathAnon},
		{name: "httputil", proc: hu, url: "http://" + hu.info["addr"] + pathAnon, profile: "httputil"},
		{name: "httputil+pool", proc: e.pooled, url: "http://" + e.pooled.info["addr"] + pathAnon, profile: "httputil-pool"},
		{name: "proxy", proc: pc, url: "http://" + px + pathAnon, profile: "proxy"},
		{name: "proxy+logbuf", proc: e.buffered, url: "http://" + e.buffered.info["proxy"] + pathAnon, profile: "proxy-logbuf"},
		{name: "decisions", proc: pc, url: "http://" + api + "/decisions" + pathAnon, profile: "decisions"},
		{name: "proxy+tracing", proc: e.traced, url: "http://" + e.traced.info["proxy"] + pathAnon, profile: "proxy-tracing", spans: true},
		{name: "decisions+tracing", proc: e.traced, url: "http://" + e.traced.info["api"] + "/decisions" + pathAnon, profile: "decisions-tracing", spans: true},
	}
	if ok := e.ok; ok != nil {
		vs = append(vs,
			httpVariant{name: "oathkeeper", pid: ok.pid(), url: "http://" + ok.proxy + pathAnon},
			httpVariant{name: "oathkeeper-decisions", pid: ok.pid(), url: "http://" + ok.api + "/decisions" + pathAnon})
	}
	if b := e.base; b != nil {
		vs = append(vs,
			httpVariant{name: "proxy@base", proc: b, url: "http://" + b.info["proxy"] + pathAnon},
			httpVariant{name: "decisions@base", proc: b, url: "http://" + b.info["api"] + "/decisions" + pathAnon})
	}
	if b := e.baseBuffered; b != nil {
		vs = append(vs, httpVariant{name: "proxy+logbuf@base", proc: b, url: "http://" + b.info["proxy"] + pathAnon})
	}
	if e.session.SessionToken != "" {
		bearer := map[string]string{"Authorization": "Bearer " + e.session.SessionToken}
		vs = append(vs,
			httpVariant{name: "session-hit", proc: pc, url: "http://" + api + "/decisions" + pathSession, headers: bearer, profile: "session-hit"},
			httpVariant{name: "session-off", proc: pc, url: "http://" + api + "/decisions" + pathNoCache, headers: bearer})
		if ok := e.ok; ok != nil {
			vs = append(vs, httpVariant{name: "oathkeeper-session", pid: ok.pid(), url: "http://" + ok.api + "/decisions" + pathSession, headers: bearer})
		}
		if b := e.base; b != nil {
			// The baseline runs the same configuration, session rules
			// included, so figure 3's cache hit compares build to build.
			vs = append(vs, httpVariant{name: "session-hit@base", proc: b, url: "http://" + b.info["api"] + "/decisions" + pathSession, headers: bearer})
		}
	}
	if e.o.variants != "" {
		keep := map[string]bool{}
		for _, n := range strings.Split(e.o.variants, ",") {
			keep[strings.TrimSpace(n)] = true
		}
		vs = slices.DeleteFunc(vs, func(v httpVariant) bool { return !keep[v.name] })
	}
	for i := range vs {
		if vs[i].proc != nil {
			vs[i].pid = vs[i].proc.pid()
		}
	}
	// Warm every path once (connections, caches, lazy init).
	for _, v := range vs {
		if _, err := runWrk(ctx, wrkOptions{Threads: 1, Connections: e.o.connections, Duration: time.Second}, v.url, v.headers); err != nil {
			return fmt.Errorf("%s warm-up: %w", v.name, err)
		}
	}
	res := map[string][]httpResult{}
	for r := range e.o.rounds {
		for _, v := range vs {
			var prof func()
			if r == 0 && v.profile != "" && v.proc != nil {
				prof = e.profile(ctx, v.proc, v.profile, o.Duration)
			}
			spans0 := e.collectorSpans(ctx, v.spans)
			m := meterCPU(v.pid, e.upstream.pid())
			got, err := runWrk(ctx, o, v.url, v.headers)
			used := m.used()
			got.Spans = e.collectorSpans(ctx, v.spans) - spans0
			if prof != nil {
				prof()
			}
			if err != nil {
				return fmt.Errorf("%s: %w", v.name, err)
			}
			if got.Requests > 0 {
				got.ServerCPU = used[0] / time.Duration(got.Requests)
				got.UpstreamCPU = used[1] / time.Duration(got.Requests)
			}
			fmt.Fprintf(os.Stderr, "bench: round %d %-12s %9.0f req/s  p50 %-9s p99 %-9s CPU/req %s (upstream %s)\n",
				r+1, v.name, got.RPS, got.P50, got.P99, got.ServerCPU, got.UpstreamCPU)
			res[v.name] = append(res[v.name], got)
		}
	}
	rps := func(name string) []float64 { return mapSlice(res[name], func(h httpResult) float64 { return h.RPS }) }
	p := func(name string, f func(httpResult) time.Duration) time.Duration {
		return medianDur(mapSlice(res[name], f))
	}
	p50 := func(h httpResult) time.Duration { return h.P50 }
	p99 := func(h httpResult) time.Duration { return h.P99 }
	lat := func(name string) string {
		return fmt.Sprintf("p50 %s / p99 %s", fmtDur(p(name, p50)), fmtDur(p(name, p99)))
	}
	cpu := func(name string) []float64 {
		return mapSlice(res[name], func(h httpResult) float64 { return float64(h.ServerCPU) })
	}
	cpuText := func(name string) string { return fmtDur(time.Duration(median(cpu(name)))) }
	t := e.table
	t.add(row{fig: "1", what: "HTTP proxy req/s (anonymous → allow → header)",
		got: fmtRate(median(rps("proxy"))), ref: fmtRate(median(rps("httputil"))) + " bare httputil",
		ratio: ratioOf(rps("proxy"), rps("httputil")), target: 0.85, targetText: "≥ 0.85"})
	t.add(row{fig: "1", what: "HTTP proxy latency", got: lat("proxy"), ref: lat("httputil") + " bare httputil"})
	t.add(row{fig: "1", what: "(context) CPU per request, proxy process", got: cpuText("proxy"), ref: cpuText("httputil") + " bare httputil",
		ratio: ratioOf(cpu("proxy"), cpu("httputil"))})
	if _, ok := res["httputil+pool"]; ok {
		t.add(row{fig: "1", what: "(context) against httputil with a buffer pool, as portcullis has",
			got: fmtRate(median(rps("proxy"))) + ", CPU " + cpuText("proxy"), ref: fmtRate(median(rps("httputil+pool"))) + ", CPU " + cpuText("httputil+pool"),
			ratio: ratioOf(rps("proxy"), rps("httputil+pool"))})
	}
	if _, ok := res["proxy+logbuf"]; ok {
		t.add(row{fig: "1", what: "HTTP proxy req/s with log.buffer " + benchLogBuffer + ", against httputil with a buffer pool",
			got:   fmtRate(median(rps("proxy+logbuf"))) + ", " + lat("proxy+logbuf") + ", CPU " + cpuText("proxy+logbuf"),
			ref:   fmtRate(median(rps("httputil+pool"))) + ", CPU " + cpuText("httputil+pool") + " httputil+pool",
			ratio: ratioOf(rps("proxy+logbuf"), rps("httputil+pool")), target: 0.9, targetText: "≥ 0.90"})
		t.add(row{fig: "1", what: "(context) log.buffer on vs off: req/s",
			got:   fmtRate(median(rps("proxy+logbuf"))) + ", CPU " + cpuText("proxy+logbuf"),
			ref:   fmtRate(median(rps("proxy"))) + ", CPU " + cpuText("proxy") + " unbuffered",
			ratio: ratioOf(rps("proxy+logbuf"), rps("proxy"))})
		t.add(row{fig: "1", what: "(context) log.buffer on vs off: CPU per request",
			got: cpuText("proxy+logbuf"), ref: cpuText("proxy") + " unbuffered",
			ratio: ratioOf(cpu("proxy+logbuf"), cpu("proxy"))})
	}
	if _, ok := res["direct"]; ok {
		t.add(row{fig: "1", what: "(context) upstream served directly", got: fmtRate(median(rps("direct"))) + ", " + lat("direct")})
	}
	t.add(row{fig: "2", what: "/decisions req/s, same rule",
		got: fmtRate(median(rps("decisions"))) + ", " + lat("decisions"), ref: fmtRate(median(rps("httputil"))) + " bare httputil",
		ratio: ratioOf(rps("decisions"), rps("httputil")), target: 2, targetText: "≥ 2"})
	t.add(row{fig: "2", what: "(context) CPU per decision", got: cpuText("decisions"), ref: cpuText("httputil") + " per bare httputil request",
		ratio: ratioOf(cpu("decisions"), cpu("httputil"))})
	if _, ok := res["session-hit"]; ok {
		t.add(row{fig: "3", what: "/decisions req/s, Kratos session token, cache hit",
			got: fmtRate(median(rps("session-hit"))) + ", " + lat("session-hit"), ref: fmtRate(median(rps("decisions"))) + " figure 2",
			ratio: ratioOf(rps("session-hit"), rps("decisions")), target: 0.8, targetText: "≥ 0.80"})
		t.add(row{fig: "3", what: "(context) CPU per decision, cache hit", got: cpuText("session-hit"), ref: cpuText("decisions") + " figure 2",
			ratio: ratioOf(cpu("session-hit"), cpu("decisions"))})
		t.add(row{fig: "3", what: "/decisions req/s, Kratos session token, cache off",
			got: fmtRate(median(rps("session-off"))) + ", " + lat("session-off"), ref: fmtRate(median(rps("decisions"))) + " figure 2",
			ratio: ratioOf(rps("session-off"), rps("decisions"))})
	} else {
		t.add(row{fig: "3", what: "/decisions with a Kratos session", got: "not run (-kratos=false)"})
	}
	if _, ok := res["proxy+tracing"]; ok {
		spansPer := func(name string) string {
			var spans, reqs int64
			for _, h := range res[name] {
				spans, reqs = spans+h.Spans, reqs+h.Requests
			}
			if reqs == 0 {
				return "no requests"
			}
			return fmt.Sprintf("%.2f spans per request reached the collector", float64(spans)/float64(reqs))
		}
		for _, v := range []struct{ on, off, what string }{
			{"proxy+tracing", "proxy", "HTTP proxy"},
			{"decisions+tracing", "decisions", "/decisions"},
		} {
			if _, ok := res[v.on]; !ok {
				continue
			}
			t.add(row{fig: "11", what: v.what + " req/s, tracing on (every request sampled, OTLP/HTTP to a collector on loopback)",
				got: fmtRate(median(rps(v.on))) + ", " + lat(v.on) + "; " + spansPer(v.on), ref: fmtRate(median(rps(v.off))) + ", " + lat(v.off) + " tracing off",
				ratio: ratioOf(rps(v.on), rps(v.off))})
			t.add(row{fig: "11", what: "(context) CPU per request, " + v.what + ", tracing on vs off", got: cpuText(v.on), ref: cpuText(v.off) + " tracing off",
				ratio: ratioOf(cpu(v.on), cpu(v.off))})
		}
	}
	okRow := func(fig, what, ours, theirs string) {
		if _, ok := res[theirs]; !ok {
			return
		}
		t.add(row{fig: fig, what: what + ": portcullis vs Ory Oathkeeper v0.40.9",
			got:   fmtRate(median(rps(ours))) + ", " + lat(ours) + ", CPU " + cpuText(ours),
			ref:   fmtRate(median(rps(theirs))) + ", " + lat(theirs) + ", CPU " + cpuText(theirs),
			ratio: ratioOf(rps(ours), rps(theirs))})
	}
	okRow("1", "(Oathkeeper) proxy req/s", "proxy", "oathkeeper")
	okRow("2", "(Oathkeeper) /decisions req/s", "decisions", "oathkeeper-decisions")
	okRow("3", "(Oathkeeper) /decisions with a Kratos session, cache off (Oathkeeper has no cache)", "session-off", "oathkeeper-session")
	okRow("3", "(Oathkeeper) /decisions with a Kratos session, portcullis's cache hit", "session-hit", "oathkeeper-session")
	if e.base != nil {
		for _, n := range []string{"proxy", "proxy+logbuf", "decisions", "session-hit"} {
			if _, ok := res[n+"@base"]; !ok {
				continue
			}
			t.add(row{fig: "A/B", what: n + ": req/s, this build vs -baseline", got: fmtRate(median(rps(n))) + ", " + lat(n),
				ref: fmtRate(median(rps(n+"@base"))) + ", " + lat(n+"@base"), ratio: ratioOf(rps(n), rps(n+"@base"))})
			t.add(row{fig: "A/B", what: n + ": CPU per request, this build vs -baseline", got: cpuText(n),
				ref: cpuText(n + "@base"), ratio: ratioOf(cpu(n), cpu(n+"@base"))})
		}
	}
	return nil
}

// collectorSpans returns the spans the collector has received, when traced
// (0 otherwise, or when it cannot tell).
func (e *env) collectorSpans(ctx context.Context, traced bool) int64 {
	if !traced || e.collector == nil {
		return 0
	}
	kv, err := e.collector.ask(ctx, 10*time.Second, "spans")
	if err != nil {
		return 0
	}
	n, _ := strconv.ParseInt(fields(kv)["spans"], 10, 64)
	return n
}

// wsFigures: 4 echo round trips over 16 connections, 5 bulk throughput.
func (e *env) wsFigures(ctx context.Context, pc, hu *roleProc) error {
	targets := []struct {
		name, base string
		pid        int // the proxy process, 0 for none
	}{
		{"direct", "ws://" + e.upAddr, 0},
		{"httputil", "ws://" + hu.info["addr"], hu.pid()},
		{"tunnel", "ws://" + pc.info["proxy"], pc.pid()},
	}
	if e.base != nil {
		targets = append(targets, struct {
			name, base string
			pid        int
		}{"tunnel@base", "ws://" + e.base.info["proxy"], e.base.pid()})
	}
	if e.polled != nil {
		targets = append(targets, struct {
			name, base string
			pid        int
		}{"tunnel+poll", "ws://" + e.polled.info["proxy"], e.polled.pid()})
	}
	if e.ok != nil {
		targets = append(targets, struct {
			name, base string
			pid        int
		}{"oathkeeper", "ws://" + e.ok.proxy, e.ok.pid()})
	}
	const conns = 16
	echo := map[string][]*wsConn{}
	defer func() {
		for _, cs := range echo {
			for _, c := range cs {
				c.close()
			}
		}
	}()
	for _, tg := range targets {
		for range conns {
			c, err := dialWS(ctx, tg.base+pathWSEcho)
			if err != nil {
				return err
			}
			echo[tg.name] = append(echo[tg.name], c)
		}
		if _, err := echoRound(echo[tg.name], 300*time.Millisecond); err != nil {
			return fmt.Errorf("%s echo warm-up: %w", tg.name, err)
		}
	}
	res := map[string][]echoResult{}
	for r := range e.o.rounds {
		for _, tg := range targets {
			var prof func()
			if r == 0 && tg.name == "tunnel" {
				prof = e.profile(ctx, pc, "ws-echo", e.o.wsDuration)
			}
			m := meterCPU(tg.pid)
			got, err := echoRound(echo[tg.name], e.o.wsDuration)
			if tg.pid != 0 && got.N > 0 {
				got.ProxyCPU = m.used()[0] / time.Duration(got.N)
			}
			if prof != nil {
				prof()
			}
			if err != nil {
				return fmt.Errorf("%s echo: %w", tg.name, err)
			}
			fmt.Fprintf(os.Stderr, "bench: round %d echo %-9s %9.0f msgs/s  p50 %-9s p99 %s\n", r+1, tg.name, got.MsgsPerSec, got.P50, got.P99)
			res[tg.name] = append(res[tg.name], got)
		}
	}
	mps := func(n string) []float64 { return mapSlice(res[n], func(r echoResult) float64 { return r.MsgsPerSec }) }
	rtt := func(n string) string {
		return fmt.Sprintf("RTT p50 %s / p99 %s", fmtDur(medianDur(mapSlice(res[n], func(r echoResult) time.Duration { return r.P50 }))),
			fmtDur(medianDur(mapSlice(res[n], func(r echoResult) time.Duration { return r.P99 }))))
	}
	t := e.table
	t.add(row{fig: "4", what: "WebSocket echo msgs/s, 64 B, 16 connections",
		got:   fmtRate(median(mps("tunnel"))) + ", " + rtt("tunnel"),
		ref:   fmtRate(median(mps("httputil"))) + ", " + rtt("httputil") + " httputil tunnel",
		ratio: ratioOf(mps("tunnel"), mps("httputil")), target: 1.2, targetText: "≥ 1.2"})
	t.add(row{fig: "4", what: "WebSocket echo vs direct",
		got: fmtRate(median(mps("tunnel"))), ref: fmtRate(median(mps("direct"))) + ", " + rtt("direct") + " direct",
		ratio: ratioOf(mps("tunnel"), mps("direct"))})
	echoCPU := func(n string) []float64 {
		return mapSlice(res[n], func(r echoResult) float64 { return float64(r.ProxyCPU) })
	}
	if _, ok := res["oathkeeper"]; ok {
		t.add(row{fig: "4", what: "(Oathkeeper) WebSocket echo msgs/s: portcullis vs Ory Oathkeeper v0.40.9",
			got: fmtRate(median(mps("tunnel"))) + ", " + rtt("tunnel"), ref: fmtRate(median(mps("oathkeeper"))) + ", " + rtt("oathkeeper"),
			ratio: ratioOf(mps("tunnel"), mps("oathkeeper"))})
	}
	if e.base != nil {
		t.add(row{fig: "A/B", what: "tunnel echo msgs/s, this build vs -baseline", got: fmtRate(median(mps("tunnel"))),
			ref: fmtRate(median(mps("tunnel@base"))), ratio: ratioOf(mps("tunnel"), mps("tunnel@base"))})
	}
	t.add(row{fig: "4", what: "(context) proxy CPU per echo round trip",
		got: fmtDur(time.Duration(median(echoCPU("tunnel")))), ref: fmtDur(time.Duration(median(echoCPU("httputil")))) + " httputil",
		ratio: ratioOf(echoCPU("tunnel"), echoCPU("httputil"))})
	if _, ok := res["tunnel+poll"]; ok {
		t.add(row{fig: "4", what: "(poll relay, off by default) WebSocket echo msgs/s: websocket_relay poll vs goroutines",
			got: fmtRate(median(mps("tunnel+poll"))) + ", " + rtt("tunnel+poll"), ref: fmtRate(median(mps("tunnel"))) + ", " + rtt("tunnel") + " goroutine relay",
			ratio: ratioOf(mps("tunnel+poll"), mps("tunnel"))})
		t.add(row{fig: "4", what: "(poll relay) proxy CPU per echo round trip",
			got: fmtDur(time.Duration(median(echoCPU("tunnel+poll")))), ref: fmtDur(time.Duration(median(echoCPU("tunnel")))) + " goroutine relay",
			ratio: ratioOf(echoCPU("tunnel+poll"), echoCPU("tunnel"))})
	}

	bulk := map[string]*wsConn{}
	defer func() {
		for _, c := range bulk {
			c.close()
		}
	}()
	for _, tg := range targets {
		c, err := dialWS(ctx, tg.base+pathWSSink)
		if err != nil {
			return err
		}
		bulk[tg.name] = c
		if _, _, err := bulkRound(c, 300*time.Millisecond); err != nil {
			return fmt.Errorf("%s bulk warm-up: %w", tg.name, err)
		}
	}
	mib := map[string][]float64{}
	cpuPerMiB := map[string][]float64{}
	endsPerMiB := map[string][]float64{} // the client's and the upstream's CPU together
	for r := range e.o.rounds {
		for _, tg := range targets {
			var prof func()
			if r == 0 && tg.name == "tunnel" {
				prof = e.profile(ctx, pc, "ws-bulk", e.o.wsDuration)
			}
			ends := meterCPU(os.Getpid(), e.upstream.pid())
			m := meterCPU(tg.pid)
			got, sent, err := bulkRound(bulk[tg.name], e.o.wsDuration)
			if tg.pid != 0 && sent > 0 {
				cpuPerMiB[tg.name] = append(cpuPerMiB[tg.name], float64(m.used()[0])/sent)
			}
			if u := ends.used(); sent > 0 {
				endsPerMiB[tg.name] = append(endsPerMiB[tg.name], float64(u[0]+u[1])/sent)
			}
			if prof != nil {
				prof()
			}
			if err != nil {
				return fmt.Errorf("%s bulk: %w", tg.name, err)
			}
			fmt.Fprintf(os.Stderr, "bench: round %d bulk %-9s %8.0f MiB/s\n", r+1, tg.name, got)
			mib[tg.name] = append(mib[tg.name], got)
		}
	}
	t.add(row{fig: "5", what: "WebSocket bulk MiB/s, 32 KiB frames",
		got:   fmt.Sprintf("%.0f MiB/s", median(mib["tunnel"])),
		ref:   fmt.Sprintf("%.0f MiB/s direct (httputil %.0f)", median(mib["direct"]), median(mib["httputil"])),
		ratio: ratioOf(mib["tunnel"], mib["direct"]), target: 0.95, targetText: "≥ 0.95"})
	if _, ok := mib["oathkeeper"]; ok {
		t.add(row{fig: "5", what: "(Oathkeeper) WebSocket bulk MiB/s: portcullis vs Ory Oathkeeper v0.40.9",
			got: fmt.Sprintf("%.0f MiB/s", median(mib["tunnel"])), ref: fmt.Sprintf("%.0f MiB/s", median(mib["oathkeeper"])),
			ratio: ratioOf(mib["tunnel"], mib["oathkeeper"])})
	}
	if e.base != nil {
		t.add(row{fig: "A/B", what: "tunnel bulk MiB/s, this build vs -baseline", got: fmt.Sprintf("%.0f MiB/s", median(mib["tunnel"])),
			ref: fmt.Sprintf("%.0f MiB/s", median(mib["tunnel@base"])), ratio: ratioOf(mib["tunnel"], mib["tunnel@base"])})
	}
	t.add(row{fig: "5", what: "(context) proxy CPU per MiB relayed",
		got: fmtDur(time.Duration(median(cpuPerMiB["tunnel"]))), ref: fmtDur(time.Duration(median(cpuPerMiB["httputil"]))) + " httputil",
		ratio: ratioOf(cpuPerMiB["tunnel"], cpuPerMiB["httputil"])})
	if _, ok := mib["tunnel+poll"]; ok {
		t.add(row{fig: "5", what: "(poll relay, off by default) WebSocket bulk MiB/s: websocket_relay poll vs goroutines",
			got:   fmt.Sprintf("%.0f MiB/s, CPU %s per MiB", median(mib["tunnel+poll"]), fmtDur(time.Duration(median(cpuPerMiB["tunnel+poll"])))),
			ref:   fmt.Sprintf("%.0f MiB/s, CPU %s per MiB goroutine relay", median(mib["tunnel"]), fmtDur(time.Duration(median(cpuPerMiB["tunnel"])))),
			ratio: ratioOf(mib["tunnel+poll"], mib["tunnel"])})
	}
	t.add(row{fig: "5", what: "(context) client + upstream CPU per MiB, the two ends together",
		got: fmtDur(time.Duration(median(endsPerMiB["tunnel"]))) + " through the tunnel",
		ref: fmtDur(time.Duration(median(endsPerMiB["direct"]))) + " direct"})
	return nil
}

// goFigures runs figure 8's go test benchmarks.
func (e *env) goFigures(ctx context.Context, withKratos bool) error {
	fmt.Fprintln(os.Stderr, "bench: running go test benchmarks (figure 8)")
	bs, err := runGoBenchmarks(ctx, e.root, withKratos, e.o.benchtime)
	if err != nil {
		return err
	}
	t := e.table
	for _, strategy := range []string{"regexp", "glob"} {
		b10, ok1 := findBench(bs, "BenchmarkMatch/"+strategy+"/rules=10")
		b100, _ := findBench(bs, "BenchmarkMatch/"+strategy+"/rules=100")
		b1000, ok2 := findBench(bs, "BenchmarkMatch/"+strategy+"/rules=1000")
		if !ok1 || !ok2 {
			return fmt.Errorf("BenchmarkMatch/%s results missing", strategy)
		}
		t.add(row{fig: "8", what: "rule match, " + strategy + ", 10 / 100 / 1,000 rules",
			got:   fmt.Sprintf("%.0f / %.0f / %.0f ns, %.0f allocs", b10.NsPerOp, b100.NsPerOp, b1000.NsPerOp, b1000.Metrics["allocs/op"]),
			ref:   "10 rules",
			ratio: []float64{b1000.NsPerOp / b10.NsPerOp}, inverse: true, target: 3, targetText: "1,000 ≤ 3 × 10", absolute: b1000.NsPerOp / b10.NsPerOp})
	}
	allocRow := func(what, name, refName, refWhat string) {
		b, ok := findBench(bs, name)
		if !ok {
			t.add(row{fig: "8", what: what, got: "not run"})
			return
		}
		r := row{fig: "8", what: what, got: fmt.Sprintf("%.0f allocs, %.0f B, %.0f ns per request", b.Metrics["allocs/op"], b.Metrics["B/op"], b.NsPerOp)}
		if rb, ok := findBench(bs, refName); ok {
			r.ref = fmt.Sprintf("%.0f allocs, %.0f B, %.0f ns %s", rb.Metrics["allocs/op"], rb.Metrics["B/op"], rb.NsPerOp, refWhat)
			r.ratio = []float64{b.NsPerOp / rb.NsPerOp}
		}
		t.add(r)
	}
	allocRow("allocations: proxy request (handler + upstream round trip)", "BenchmarkProxyRequest/portcullis", "BenchmarkProxyRequest/httputil", "bare httputil")
	allocRow("tracing off: proxy request (tracing.provider unset)", "BenchmarkTracing/off", "BenchmarkTracing/httputil", "bare httputil")
	allocRow("tracing on: proxy request, every request sampled (spans to a discarding exporter)", "BenchmarkTracing/on", "BenchmarkTracing/off", "tracing off")
	allocRow("allocations: decision (pipeline only)", "BenchmarkDecision/anonymous", "", "")
	allocRow("allocations: decision with a Kratos session, cache hit", "BenchmarkDecisionSession/cache=hit", "BenchmarkDecisionSession/anonymous", "anonymous decision")
	allocRow("allocations: decision with a Kratos session, cache off", "BenchmarkDecisionSession/cache=off", "BenchmarkDecisionSession/anonymous", "anonymous decision")
	allocRow("allocations: session cache hit (authenticator)", "BenchmarkCookieSession/cache=hit", "BenchmarkCookieSession/anonymous", "anonymous authenticator")
	return nil
}

// profile starts CPU and allocation profiles of portcullis for the
// length of a run and returns a func that waits for them; nil when
// profiling is off.
func (e *env) profile(ctx context.Context, pc *roleProc, name string, d time.Duration) func() {
	addr := pc.info["pprof"]
	if e.o.profileDir == "" || addr == "" {
		return nil
	}
	secs := max(int(d.Seconds())-1, 1)
	done := make(chan struct{}, 2)
	fetch := func(kind, file string) {
		defer func() { done <- struct{}{} }()
		e.saveProfile(ctx, fmt.Sprintf("http://%s/debug/pprof/%s?seconds=%d", addr, kind, secs), file)
	}
	go fetch("profile", "cpu-"+name+".pprof")
	go fetch("allocs", "allocs-"+name+".pprof")
	return func() { <-done; <-done }
}

// heapProfile saves a heap profile of p (live objects after a GC) when
// profiling is on.
func (e *env) heapProfile(ctx context.Context, p *roleProc, file string) {
	addr := p.info["pprof"]
	if e.o.profileDir == "" || addr == "" {
		return
	}
	e.saveProfile(ctx, "http://"+addr+"/debug/pprof/heap?gc=1", file)
}

// saveProfile fetches the profile at u into file in the profile
// directory; a failed fetch is reported on stderr and saves nothing.
func (e *env) saveProfile(ctx context.Context, u, file string) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench: profile:", err)
		return
	}
	defer res.Body.Close()
	f, err := os.Create(filepath.Join(e.o.profileDir, file))
	if err != nil {
		return
	}
	defer f.Close()
	_, _ = io.Copy(f, res.Body)
}

// repoRoot finds the module root from the working directory.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && strings.Contains(string(b), "module github.com/portcullis-proxy/portcullis\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("run bench from inside the portcullis repository")
		}
		dir = parent
	}
}

func mapSlice[T, U any](in []T, f func(T) U) []U {
	out := make([]U, len(in))
	for i, v := range in {
		out[i] = f(v)
	}
	return out
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func medianDur(v []time.Duration) time.Duration {
	return time.Duration(median(mapSlice(v, func(d time.Duration) float64 { return float64(d) })))
}

// ratioOf pairs the rounds: the ratio of each round's figures (the same
// machine conditions), from which the table takes the median.
func ratioOf(a, b []float64) []float64 {
	var out []float64
	for i := range min(len(a), len(b)) {
		if b[i] > 0 {
			out = append(out, a[i]/b[i])
		}
	}
	return out
}

func fmtRate(v float64) string {
	switch {
	case v >= 10000:
		return fmt.Sprintf("%.1fk/s", v/1000)
	default:
		return fmt.Sprintf("%.0f/s", v)
	}
}

func fmtDur(d time.Duration) string {
	switch {
	case d >= time.Millisecond:
		return fmt.Sprintf("%.2f ms", float64(d)/1e6)
	default:
		return fmt.Sprintf("%.0f µs", float64(d)/1e3)
	}
}
