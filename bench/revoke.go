package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/portcullis-proxy/portcullis/testsupport/kratostest"
	"github.com/portcullis-proxy/portcullis/testsupport/redistest"
)

// Figure 9: revocation across replicas.
//
//   - 9a: three portcullis processes on one Redis and one Kratos hold
//     -revoke-tunnels tunnels each, all of one session (held by the wsclient
//     process); the harness notes the time, asks replica 0's admin API to
//     revoke the session, and the clients report when each Close frame
//     arrived. The figure is the spread from the revocation call to the
//     arrivals: p50, p99, and the last one.
//   - 9b: one portcullis re-checking every 2s holds 1,000 tunnels over 10
//     sessions; a pass-through in front of Kratos counts the whoami calls
//     over three intervals. With -baseline (a bench binary built from a
//     commit before coalesced re-checks) the same run against it is the
//     "without coalescing" reference.

// pathWSRevoke is the rule of figure 9: bearer_token, tunnel bound to the
// session, re-checked every revalidate_every.
const pathWSRevoke = "/wsr/idle"

// writeRevokeConfig writes a replica's configuration: the benchmark server
// configuration plus the admin API, the Redis channel (redisURL "" for
// none) and a ws rule re-checked every revalidate.
func writeRevokeConfig(dir, upstream, whoami, redisURL, adminToken, revalidate string) (string, error) {
	rules := fmt.Sprintf(`- id: ws-revoke
  match:
    url: "http://<[^/]+>/wsr/<.*>"
    methods: [GET]
  authenticators: [{handler: bearer_token}]
  authorizer: {handler: allow}
  mutators: [{handler: header}]
  upstream: {url: %q}
  websocket: {revalidate_every: %s, max_lifetime: 1h, idle_timeout: 1h}
`, upstream, revalidate)
	rulesPath := filepath.Join(dir, "access-rules.yml")
	if err := os.WriteFile(rulesPath, []byte(rules), 0o600); err != nil {
		return "", err
	}
	bearer := fmt.Sprintf("  bearer_token:\n    enabled: true\n    config:\n      check_session_url: %q\n", whoami)
	cfg := serverConfig([3]int{}, rulesPath, bearer, "warning", "text")
	if adminToken != "" {
		cfg = strings.Replace(cfg, "api: {host: 127.0.0.1, port: 0}", "api: {host: 127.0.0.1, port: 0, admin: {token: "+adminToken+"}}", 1)
	}
	if redisURL != "" {
		cfg += "revocation:\n  redis: {url: " + redisURL + "}\n"
	}
	p := filepath.Join(dir, "portcullis.yml")
	return p, os.WriteFile(p, []byte(cfg), 0o600)
}

func (e *env) revoke(ctx context.Context) error {
	k, err := kratostest.New(kratostest.Options{SessionLifespan: time.Hour})
	if err != nil {
		return fmt.Errorf("start Kratos: %w", err)
	}
	defer k.Close()
	counter, err := kratostest.NewWhoamiCounter(k.PublicURL())
	if err != nil {
		return err
	}
	defer counter.Close()
	whoami := counter.WhoamiURL()
	if err := e.revokeLatency(ctx, k, whoami); err != nil {
		e.table.fail("9", "revocation to the last Close, 3 replicas", err)
		return err
	}
	if err := e.recheckCalls(ctx, k, counter); err != nil {
		e.table.fail("9", "Kratos calls per re-check interval", err)
		return err
	}
	return nil
}

// revokeLatency measures figure 9a.
func (e *env) revokeLatency(ctx context.Context, k *kratostest.Kratos, whoami string) error {
	rd, err := redistest.New()
	if err != nil {
		return err
	}
	defer rd.Close()
	tok := make([]byte, 16)
	_, _ = rand.Read(tok)
	admin := hex.EncodeToString(tok)
	n := e.o.revokeTunnels
	var replicas [3]*roleProc
	for i := range replicas {
		d := filepath.Join(e.dir, fmt.Sprintf("revoke-%d", i))
		if err := os.MkdirAll(d, 0o700); err != nil {
			return err
		}
		cfg, err := writeRevokeConfig(d, "http://"+e.upAddr, whoami, rd.URL(), admin, "1m")
		if err != nil {
			return err
		}
		p, err := startRole(ctx, "portcullis", envConfig+"="+cfg, envLogFile+"="+filepath.Join(d, "portcullis.log"))
		if err != nil {
			return err
		}
		defer p.stop()
		replicas[i] = p
	}
	sess, err := k.Register()
	if err != nil {
		return err
	}
	cl, err := startRole(ctx, "wsclient")
	if err != nil {
		return err
	}
	defer cl.stop()
	auth := "Authorization=" + url.PathEscape("Bearer "+sess.SessionToken)
	for i, p := range replicas {
		ans, err := cl.ask(ctx, 5*time.Minute, "open %d ws://%s%s %s", n, p.info["proxy"], pathWSRevoke, auth)
		if err != nil {
			return err
		}
		if m := fields(ans); m["opened"] != fmt.Sprint(n) {
			return fmt.Errorf("replica %d: %s", i, strings.Join(ans, " "))
		}
	}
	// Let the replicas settle (handshake goroutines, first reports).
	time.Sleep(time.Second)
	// The clients must be reading when the Close frames arrive, or the
	// figure would measure their own start: they are told first to await
	// Closes from t0, a moment ahead, and the revocation is made at t0.
	t0 := time.Now().Add(2 * time.Second)
	type result struct {
		ans []string
		err error
	}
	awaited := make(chan result, 1)
	go func() {
		ans, err := cl.ask(ctx, 2*time.Minute, "await %d 60", t0.UnixNano())
		awaited <- result{ans, err}
	}()
	time.Sleep(time.Until(t0))
	body, _ := json.Marshal(map[string]string{"session_id": sess.SessionID})
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+replicas[0].info["api"]+"/admin/revocations", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+admin)
	start := time.Now()
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	var out struct {
		Closed int `json:"closed"`
	}
	_ = json.NewDecoder(res.Body).Decode(&out)
	res.Body.Close()
	answered := time.Since(start)
	if res.StatusCode != http.StatusOK || out.Closed != n {
		return fmt.Errorf("admin revocation: %d, closed %d of %d", res.StatusCode, out.Closed, n)
	}
	got := <-awaited
	ans, err := got.ans, got.err
	if err != nil {
		return err
	}
	m := fields(ans)
	ms := func(k string) float64 {
		var v float64
		fmt.Sscan(m[k], &v)
		return v / 1e6
	}
	var codes []string
	for _, w := range ans {
		if c, ok := strings.CutPrefix(w, "code="); ok {
			codes = append(codes, c)
		}
	}
	e.table.add(row{fig: "9", what: fmt.Sprintf("revocation call to Close, 3 replicas × %d tunnels of one session (Redis Stream)", n),
		got:    fmt.Sprintf("p50 %.1f ms / p99 %.1f ms / last %.1f ms (%s of %d)", ms("p50"), ms("p99"), ms("max"), m["received"], 3*n),
		ref:    fmt.Sprintf("admin API answered in %s (started %s after t0); close codes: %s", fmtDur(answered), fmtDur(start.Sub(t0)), strings.Join(codes, ", ")),
		target: 250, targetText: "p99 ≤ 250 ms (goal 100 ms)", inverse: true, absolute: ms("p99")})
	if m["received"] != fmt.Sprint(3*n) {
		return fmt.Errorf("only %s of %d clients received a Close", m["received"], 3*n)
	}
	return nil
}

// recheckCalls measures figure 9b, and its reference with -baseline.
func (e *env) recheckCalls(ctx context.Context, k *kratostest.Kratos, counter *kratostest.WhoamiCounter) error {
	const sessions, perSession, interval, rounds = 10, 100, 2 * time.Second, 3
	var tokens []string
	for range sessions {
		s, err := k.Register()
		if err != nil {
			return err
		}
		tokens = append(tokens, s.SessionToken)
	}
	measure := func(exe, name string) (float64, error) {
		d := filepath.Join(e.dir, name)
		if err := os.MkdirAll(d, 0o700); err != nil {
			return 0, err
		}
		cfg, err := writeRevokeConfig(d, "http://"+e.upAddr, counter.WhoamiURL(), "", "", interval.String())
		if err != nil {
			return 0, err
		}
		p, err := startRoleFrom(ctx, exe, "portcullis", envConfig+"="+cfg, envLogFile+"="+filepath.Join(d, "portcullis.log"))
		if err != nil {
			return 0, err
		}
		defer p.stop()
		cl, err := startRoleFrom(ctx, exe, "wsclient")
		if err != nil {
			return 0, err
		}
		defer cl.stop()
		for _, tok := range tokens {
			ans, err := cl.ask(ctx, 5*time.Minute, "open %d ws://%s%s Authorization=%s", perSession, p.info["proxy"], pathWSRevoke, url.PathEscape("Bearer "+tok))
			if err != nil {
				return 0, err
			}
			if m := fields(ans); m["opened"] != fmt.Sprint(perSession) {
				return 0, fmt.Errorf("%s: %s", name, strings.Join(ans, " "))
			}
		}
		before := counter.Calls()
		time.Sleep(rounds * interval)
		return float64(counter.Calls()-before) / rounds, nil
	}
	got, err := measure("", "recheck")
	if err != nil {
		return err
	}
	r := row{fig: "9", what: fmt.Sprintf("Kratos whoami calls per re-check interval, %d tunnels over %d sessions (counted at Kratos)", sessions*perSession, sessions),
		got: fmt.Sprintf("%.1f per %s", got, interval), ref: "one per tunnel would be 1000"}
	if e.o.baseline != "" {
		ref, err := measure(e.o.baseline, "recheck-base")
		if err != nil {
			return fmt.Errorf("baseline: %w", err)
		}
		r.ref = fmt.Sprintf("%.1f per %s, the -baseline build (re-check per tunnel)", ref, interval)
		r.ratio = []float64{got / ref}
	}
	e.table.add(r)
	return nil
}
