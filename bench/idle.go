package main

import (
	"context"
	"fmt"
	"math"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/portcullis-proxy/portcullis/testsupport/kratostest"
)

// The idle section: figures 6 (what an idle tunnel costs), 7 (how late the
// Close frames of tunnels reaching a deadline together are) and 10 (what
// an idle event stream costs). Every measurement is taken in a fresh
// process. With -baseline, each of -idle-rounds rounds measures this
// build's portcullis and the baseline's, in turn (the order alternating
// from round to round), and A/B rows divide the two round by round.

// idleBuild is one portcullis build the idle section measures.
type idleBuild struct {
	name string // "portcullis" or "portcullis@base"
	exe  string // its bench binary; "" for this one
}

// idleRun is what one round measured of one build.
type idleRun struct {
	tunnel idleCost // figure 6
	// expiry is the wsclient's answer for the Close frames at one session
	// expiry (nil without Kratos); life the answer at max lifetime, whose
	// tunnels took lifeOpen seconds to open.
	expiry, life []string
	lifeOpen     string
	stream       idleCost // figure 10
}

// idle measures figures 6, 7 and 10.
func (e *env) idle(ctx context.Context) error {
	n := e.o.tunnels
	cl, err := startRole(ctx, "wsclient")
	if err != nil {
		return err
	}
	defer cl.stop()

	// The references: httputil holding the same tunnels, then the same
	// event streams, each in a fresh process.
	ref, err := e.referenceIdle(ctx, cl, n, func(hu *roleProc) (idleCost, error) {
		c, err := e.measureIdle(ctx, cl, hu, "ws://"+hu.info["addr"]+pathWSEcho, n, "")
		if err == nil {
			_, err = cl.ask(ctx, 2*time.Minute, "closeall")
		}
		return c, err
	})
	if err != nil {
		return fmt.Errorf("httputil tunnels: %w", err)
	}
	refStream, err := e.referenceIdle(ctx, cl, n, func(hu *roleProc) (idleCost, error) {
		return e.measureStreams(ctx, cl, hu, "http://"+hu.info["addr"]+pathSSE, n)
	})
	if err != nil {
		return fmt.Errorf("httputil event streams: %w", err)
	}

	// One Kratos for the rounds: each run logs in afresh, so its session
	// expires a fixed time after, shortly after its tunnels are all open.
	var k *kratostest.Kratos
	if e.o.kratos {
		// Kratos takes whole units only.
		life := (20*time.Second + time.Duration(n)*3*time.Millisecond).Round(time.Second)
		if k, err = kratostest.New(kratostest.Options{SessionLifespan: life}); err != nil {
			return fmt.Errorf("start Kratos: %w", err)
		}
		defer k.Close()
	}
	builds := []idleBuild{{name: "portcullis"}}
	if e.o.baseline != "" {
		builds = append(builds, idleBuild{name: "portcullis@base", exe: e.o.baseline})
	}
	runs := map[string][]idleRun{}
	for r := range max(e.o.idleRounds, 1) {
		for i := range builds {
			b := builds[(r+i)%len(builds)]
			e.table.noteLoad(fmt.Sprintf("idle round %d, %s", r+1, b.name))
			got, err := e.idleRound(ctx, cl, k, b, r == 0 && b.exe == "")
			if err != nil {
				return fmt.Errorf("%s, round %d: %w", b.name, r+1, err)
			}
			runs[b.name] = append(runs[b.name], got)
		}
		// Figure 6 of this build with the poll relay, in a fresh process.
		e.table.noteLoad(fmt.Sprintf("idle round %d, portcullis+poll", r+1))
		got, err := e.idlePoll(ctx, cl)
		if err != nil {
			return fmt.Errorf("portcullis+poll, round %d: %w", r+1, err)
		}
		runs["portcullis+poll"] = append(runs["portcullis+poll"], idleRun{tunnel: got})
	}
	e.idleRows(n, runs, ref, refStream, k != nil)
	return nil
}

// idlePoll measures figure 6 of this build with the poll relay
// (serve.proxy.websocket_relay: poll): n idle anonymous tunnels.
func (e *env) idlePoll(ctx context.Context, cl *roleProc) (idleCost, error) {
	pc, err := e.startPortcullisFrom(ctx, "", "idle-poll", "", extras{relay: "poll"})
	if err != nil {
		return idleCost{}, err
	}
	defer pc.stop()
	c, err := e.measureIdle(ctx, cl, pc, "ws://"+pc.info["proxy"]+pathWSEcho, e.o.tunnels, "")
	if err == nil {
		_, err = cl.ask(ctx, 2*time.Minute, "closeall")
	}
	return c, err
}

// referenceIdle runs measure against a fresh httputil process.
func (e *env) referenceIdle(ctx context.Context, cl *roleProc, n int, measure func(*roleProc) (idleCost, error)) (idleCost, error) {
	hu, err := startRole(ctx, "httputil", envUpstream+"=http://"+e.upAddr)
	if err != nil {
		return idleCost{}, err
	}
	defer hu.stop()
	return measure(hu)
}

// idleRound measures one build once: figure 6 and both rows of figure 7
// in one fresh process, figure 10 in another. profile: take this build's
// profiles (round 1 only).
func (e *env) idleRound(ctx context.Context, cl *roleProc, k *kratostest.Kratos, b idleBuild, profile bool) (idleRun, error) {
	n := e.o.tunnels
	var run idleRun
	whoami, path, auth := "", pathWSEcho, ""
	if k != nil {
		whoami, path = k.WhoamiURL(), pathWSSession
	}
	pc, err := e.startPortcullisFrom(ctx, b.exe, "idle-"+strings.ReplaceAll(b.name, "@", "-"), whoami, extras{})
	if err != nil {
		return run, err
	}
	defer pc.stop()
	var sess kratostest.Identity
	if k != nil {
		if sess, err = k.Register(); err != nil {
			return run, err
		}
		auth = "Authorization=" + url.PathEscape("Bearer "+sess.SessionToken)
	}
	if run.tunnel, err = e.measureIdle(ctx, cl, pc, "ws://"+pc.info["proxy"]+path, n, auth); err != nil {
		return run, err
	}
	if profile {
		e.heapProfile(ctx, pc, "heap-idle-tunnels.pprof")
	}
	if f, err := pc.ask(ctx, time.Minute, "tunnels"); err == nil && fields(f)["active"] != fmt.Sprint(n) {
		return run, fmt.Errorf("portcullis reports %v tunnels, want %d", f, n)
	}

	if k == nil {
		// No session to expire: the tunnels of figure 6 end here.
		if _, err := cl.ask(ctx, 2*time.Minute, "closeall"); err != nil {
			return run, err
		}
	} else {
		if time.Until(sess.ExpiresAt) < time.Second {
			return run, fmt.Errorf("opening %d tunnels outlasted the session (expires %s); raise the margin", n, sess.ExpiresAt)
		}
		fmt.Fprintf(os.Stderr, "bench: %s: waiting %s for the session to expire under %d tunnels\n", b.name, time.Until(sess.ExpiresAt).Round(time.Second), n)
		profiled := make(chan struct{})
		go func() {
			// Profile the close burst, from a second before the expiry.
			defer close(profiled)
			if !profile {
				return
			}
			time.Sleep(time.Until(sess.ExpiresAt) - time.Second)
			if prof := e.profile(ctx, pc, "close-burst", 4*time.Second); prof != nil {
				prof()
			}
		}()
		run.expiry, err = cl.ask(ctx, time.Until(sess.ExpiresAt)+2*time.Minute, "await %d %d", sess.ExpiresAt.UnixNano(), int(time.Until(sess.ExpiresAt).Seconds())+60)
		<-profiled
		if err != nil {
			return run, err
		}
		if m := fields(run.expiry); m["received"] != fmt.Sprint(n) {
			return run, fmt.Errorf("only %s of %d clients received a Close at the session expiry", m["received"], n)
		}
	}

	// The same through the max-lifetime path: every tunnel of the rule
	// lives life from its opening. They open one after another, so their
	// deadlines spread over the time it takes to open them all.
	life := lifetimeFor(n)
	ans, err := cl.ask(ctx, 5*time.Minute, "open %d %s", n, "ws://"+pc.info["proxy"]+pathWSLifetime)
	if err != nil {
		return run, err
	}
	m := fields(ans)
	if m["opened"] != fmt.Sprint(n) {
		return run, fmt.Errorf("max lifetime: opened %s of %d tunnels (%s)", m["opened"], n, m["first_error"])
	}
	run.lifeOpen = m["secs"]
	fmt.Fprintf(os.Stderr, "bench: %s: %d tunnels with a max lifetime of %s opened in %ss; waiting for their Close\n", b.name, n, life, m["secs"])
	if run.life, err = cl.ask(ctx, life+2*time.Minute, "awaitlife %s %d", life, int(life.Seconds())+60); err != nil {
		return run, err
	}
	if m := fields(run.life); m["received"] != fmt.Sprint(n) {
		return run, fmt.Errorf("only %s of %d clients received a Close at max lifetime", m["received"], n)
	}
	pc.stop()

	// Figure 10 in a fresh process.
	ps, err := e.startPortcullisFrom(ctx, b.exe, "sse-"+strings.ReplaceAll(b.name, "@", "-"), "", extras{})
	if err != nil {
		return run, err
	}
	defer ps.stop()
	run.stream, err = e.measureStreams(ctx, cl, ps, "http://"+ps.info["proxy"]+pathSSE, n)
	return run, err
}

// idleRows adds the rows of figures 6, 7 and 10, and the A/B rows.
func (e *env) idleRows(n int, runs map[string][]idleRun, ref, refStream idleCost, expiry bool) {
	t := e.table
	ours := runs["portcullis"]
	kib := func(b float64) string { return fmt.Sprintf("%.1f KiB", b/1024) }
	med := func(rs []idleRun, f func(idleRun) float64) float64 { return median(mapSlice(rs, f)) }
	// costRows adds the three cost rows of the runs rs against ref;
	// goroutines, when >= 0, is the goroutine row's target.
	costRows := func(rs []idleRun, fig, what, suffix string, cost func(idleRun) idleCost, ref idleCost, target float64, targetText string, goroutines float64) {
		heapStack := med(rs, func(r idleRun) float64 { return cost(r).heapStack })
		row6 := row{fig: fig, what: fmt.Sprintf("heap+stack per idle %s (%d %ss)%s", what, n, what, suffix),
			got: fmt.Sprintf("%s (heap %s + stacks %s)", kib(heapStack),
				kib(med(rs, func(r idleRun) float64 { return cost(r).heap })), kib(med(rs, func(r idleRun) float64 { return cost(r).stack }))),
			ref:   fmt.Sprintf("%s (heap %s + stacks %s) httputil", kib(ref.heapStack), kib(ref.heap), kib(ref.stack)),
			ratio: mapSlice(rs, func(r idleRun) float64 { return cost(r).heapStack / ref.heapStack })}
		if target > 0 {
			row6.inverse, row6.target, row6.targetText, row6.absolute = true, target, targetText, heapStack
		}
		t.add(row6)
		t.add(row{fig: fig, what: "RSS per idle " + what + suffix, got: kib(med(rs, func(r idleRun) float64 { return cost(r).rss })),
			ref: kib(ref.rss) + " httputil", ratio: mapSlice(rs, func(r idleRun) float64 { return cost(r).rss / ref.rss })})
		g := med(rs, func(r idleRun) float64 { return cost(r).goroutines })
		rowG := row{fig: fig, what: "goroutines per idle " + what + suffix, got: fmt.Sprintf("%.2f", g), ref: fmt.Sprintf("%.2f httputil", ref.goroutines)}
		if goroutines >= 0 {
			rowG.target, rowG.inverse, rowG.absolute = goroutines, true, math.Round(g*100)/100
			rowG.targetText = fmt.Sprintf("≤ %g", goroutines)
			if goroutines == 0 {
				// None, as the table shows it (two decimals): the one
				// dispatcher per process is 0.0002 per tunnel at 5,000.
				rowG.target, rowG.targetText = 0.005, "0 (goal)"
			}
		}
		t.add(rowG)
	}
	// Figure 6's target is 4 KiB per idle tunnel and, as a goal, no
	// goroutine while it is idle: the default relay's floor is its two
	// goroutines' stacks, so its rows are held to 4 KiB and 2 goroutines,
	// the poll relay's to 4 KiB and none.
	tunnel := func(r idleRun) idleCost { return r.tunnel }
	costRows(ours, "6", "tunnel", "", tunnel, ref, 4<<10, "≤ 4 KiB", 2)
	if polled, ok := runs["portcullis+poll"]; ok {
		costRows(polled, "6", "tunnel", ", poll relay (websocket_relay: poll, off by default)", tunnel, ref, 4<<10, "≤ 4 KiB", 0)
	}
	if expiry {
		t.add(lateRow(mapSlice(ours, func(r idleRun) []string { return r.expiry }), n,
			fmt.Sprintf("Close lateness, %d tunnels at one session expiry", n), true))
	} else {
		t.add(row{fig: "7", what: "Close lateness at a common deadline", got: "not run (-kratos=false)"})
	}
	opened := strings.Join(mapSlice(ours, func(r idleRun) string { return r.lifeOpen + "s" }), ", ")
	t.add(lateRow(mapSlice(ours, func(r idleRun) []string { return r.life }), n,
		fmt.Sprintf("Close lateness, %d tunnels at max lifetime (%s; opened over %s)", n, lifetimeFor(n), opened), false))
	costRows(ours, "10", "event stream", "", func(r idleRun) idleCost { return r.stream }, refStream, 0, "", -1)

	base, ok := runs["portcullis@base"]
	if !ok {
		return
	}
	ab := func(what string, f func(idleRun) float64, format func(float64) string) {
		t.add(row{fig: "A/B", what: what + ", this build vs -baseline",
			got: format(med(ours, f)), ref: format(med(base, f)), ratio: ratioOf(mapSlice(ours, f), mapSlice(base, f))})
	}
	ms := func(v float64) string { return fmt.Sprintf("%.1f ms", v) }
	ab("idle tunnel heap+stack", func(r idleRun) float64 { return r.tunnel.heapStack }, kib)
	if expiry {
		ab("Close lateness p99 at one session expiry", func(r idleRun) float64 { return answerMs(r.expiry, "p99") }, ms)
		ab("Close lateness p50 at one session expiry", func(r idleRun) float64 { return answerMs(r.expiry, "p50") }, ms)
		// Signed values: the ratio column would mislead, so the two
		// medians are shown without one.
		t.add(row{fig: "A/B", what: "earliest Close at one session expiry (negative: before it), this build vs -baseline",
			got: ms(med(ours, func(r idleRun) float64 { return answerMs(r.expiry, "min") })),
			ref: ms(med(base, func(r idleRun) float64 { return answerMs(r.expiry, "min") }))})
	}
	ab("Close lateness p99 at max lifetime", func(r idleRun) float64 { return answerMs(r.life, "p99") }, ms)
	t.add(row{fig: "A/B", what: "earliest Close at max lifetime (negative: before it), this build vs -baseline",
		got: ms(med(ours, func(r idleRun) float64 { return answerMs(r.life, "min") })),
		ref: ms(med(base, func(r idleRun) float64 { return answerMs(r.life, "min") }))})
	ab("idle event stream heap+stack", func(r idleRun) float64 { return r.stream.heapStack }, kib)
	ab("goroutines per idle event stream", func(r idleRun) float64 { return r.stream.goroutines },
		func(v float64) string { return fmt.Sprintf("%.2f", v) })
}

// lifetimeFor is the max lifetime of the figure 7 rule for n tunnels:
// long enough to open them all first.
func lifetimeFor(n int) time.Duration {
	return (15*time.Second + time.Duration(n)*2*time.Millisecond).Round(time.Second)
}

// answerMs reads the wsclient answer's field k (nanoseconds) in ms.
func answerMs(ans []string, k string) float64 {
	var v float64
	fmt.Sscan(fields(ans)[k], &v)
	return v / 1e6
}

// lateRow is a figure 7 row from the wsclient's await answers, one per
// round: the medians of the rounds' earliest, p50, p99 and max (each
// round's p99 listed when there are several), and the close codes of the
// first round. Lateness is signed: a Close that arrived before its
// deadline (a burst of fixed deadlines starts ahead of them, by at most
// the tunnel's lead bound) reads negative, and "earliest" shows how early
// the earliest was.
func lateRow(answers [][]string, n int, what string, target bool) row {
	q := func(k string) float64 {
		return median(mapSlice(answers, func(a []string) float64 { return answerMs(a, k) }))
	}
	got := fmt.Sprintf("earliest %.1f ms / p50 %.1f ms / p99 %.1f ms / max %.1f ms (%s of %d)", q("min"), q("p50"), q("p99"), q("max"), fields(answers[0])["received"], n)
	if len(answers) > 1 {
		got += "; p99 by round " + strings.Join(mapSlice(answers, func(a []string) string { return fmt.Sprintf("%.1f", answerMs(a, "p99")) }), " / ") + " ms"
	}
	var codes []string
	for _, w := range answers[0] {
		if c, ok := strings.CutPrefix(w, "code="); ok {
			codes = append(codes, c)
		}
	}
	r := row{fig: "7", what: what, got: got, ref: "close codes: " + strings.Join(codes, ", ")}
	if target {
		r.target, r.targetText, r.inverse, r.absolute = 50, "p99 ≤ 50 ms", true, q("p99")
	}
	return r
}

// idleCost is what one idle tunnel or stream costs its proxy process.
type idleCost struct {
	heapStack, heap, stack, rss, goroutines float64
}

// measureIdle opens n idle tunnels through p from the client process and
// returns p's cost per tunnel.
func (e *env) measureIdle(ctx context.Context, cl, p *roleProc, u string, n int, header string) (idleCost, error) {
	return e.measureHeld(ctx, p, n, "tunnels", func() ([]string, error) {
		return cl.ask(ctx, 5*time.Minute, "open %d %s %s", n, u, header)
	})
}

// measureStreams opens n idle event streams through p from the client
// process, returns p's cost per stream and ends the streams.
func (e *env) measureStreams(ctx context.Context, cl, p *roleProc, u string, n int) (idleCost, error) {
	c, err := e.measureHeld(ctx, p, n, "event streams", func() ([]string, error) {
		return cl.ask(ctx, 5*time.Minute, "sse %d %s", n, u)
	})
	if _, cerr := cl.ask(ctx, 2*time.Minute, "closesse"); err == nil {
		err = cerr
	}
	return c, err
}

// measureHeld reads p's memory and goroutines before and after open has
// the client process open n channels through it, and returns the
// difference per channel.
func (e *env) measureHeld(ctx context.Context, p *roleProc, n int, what string, open func() ([]string, error)) (idleCost, error) {
	time.Sleep(500 * time.Millisecond)
	before, err := p.stats(ctx)
	if err != nil {
		return idleCost{}, err
	}
	ans, err := open()
	if err != nil {
		return idleCost{}, err
	}
	m := fields(ans)
	fmt.Fprintf(os.Stderr, "bench: %s: opened %s %s in %ss (failed %s) %s\n", p.role, m["opened"], what, m["secs"], m["failed"], m["first_error"])
	if m["opened"] != fmt.Sprint(n) {
		return idleCost{}, fmt.Errorf("opened %s of %d %s (%s)", m["opened"], n, what, m["first_error"])
	}
	time.Sleep(time.Second) // let the HTTP server's per-connection goroutines end
	after, err := p.stats(ctx)
	if err != nil {
		return idleCost{}, err
	}
	f := float64(n)
	c := idleCost{
		heapStack:  float64(after.Heap+after.Stack-before.Heap-before.Stack) / f,
		heap:       float64(after.Heap-before.Heap) / f,
		stack:      float64(after.Stack-before.Stack) / f,
		rss:        float64(after.RSS-before.RSS) / f,
		goroutines: float64(after.Goroutines-before.Goroutines) / f,
	}
	fmt.Fprintf(os.Stderr, "bench: %s: per idle %s heap %.0f B + stacks %.0f B, RSS %.0f B, goroutines %.2f\n", p.role, what, c.heap, c.stack, c.rss, c.goroutines)
	return c, nil
}
