package replicas

import (
	"bytes"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/portcullis-proxy/portcullis/testsupport/kratostest"
	"github.com/portcullis-proxy/portcullis/testsupport/redistest"
	"github.com/portcullis-proxy/portcullis/testsupport/servertest"
	"github.com/portcullis-proxy/portcullis/testsupport/wsecho"
)

// closeBound is how long a revocation may take to reach a client's Close
// on every replica in these tests: generous, because the 2-core machine the
// tests run on is shared (the bench figure measures the real latency).
const closeBound = 10 * time.Second

// fleet is three replicas on one Redis and one real Kratos.
type fleet struct {
	k     *kratostest.Kratos
	redis *redistest.Redis
	r     [3]*servertest.Server
}

func startFleet(t *testing.T) *fleet {
	t.Helper()
	k := kratosShared.Get(t)
	rd := redistest.Start(t)
	up := wsecho.Start(t, wsecho.Options{})
	f := &fleet{k: k, redis: rd}
	for i := range f.r {
		f.r[i] = startReplica(t, replicaOptions{
			whoamiURL: k.WhoamiURL(), kratosPublic: k.PublicURL(), redisURL: rd.URL(), upstream: up.URL,
		})
	}
	return f
}

// onAll opens one tunnel per replica at path with header.
func (f *fleet) onAll(t *testing.T, path string, h http.Header) [3]*servertest.Tunnel {
	var out [3]*servertest.Tunnel
	for i, r := range f.r {
		out[i] = mustDial(t, r, path, h)
		out[i].Echo(t, "ping")
	}
	return out
}

func expectRevoked(t *testing.T, what string, tus [3]*servertest.Tunnel, wantReason string) {
	t.Helper()
	for i, tu := range tus {
		code, reason := tu.CloseWithin(closeBound)
		if code != ws.StatusPolicyViolation || reason != wantReason {
			t.Errorf("%s: replica %d's tunnel got Close %d %q, want 1008 %q", what, i, code, reason, wantReason)
		}
	}
}

// TestAdminRevocationAcrossReplicas: an admin revocation by session, by
// subject and by rule, made on one replica, closes the matching tunnels on
// all three and no others; a revoked session is refused at its next
// upgrade on every replica although Kratos still accepts it and the
// session caches hold it; the admin API wants its token.
func TestAdminRevocationAcrossReplicas(t *testing.T) {
	f := startFleet(t)
	alice := f.k.RegisterAPI(t)
	bob := f.k.RegisterAPI(t)
	carol := f.k.RegisterAPI(t)

	aliceChat := f.onAll(t, "/chat/a", tokenHeader(alice.SessionToken))
	bobChat := f.onAll(t, "/chat/b", tokenHeader(bob.SessionToken))
	carolFeed := f.onAll(t, "/feed/c", tokenHeader(carol.SessionToken))
	carolChat := f.onAll(t, "/chat/c", tokenHeader(carol.SessionToken))

	// The admin API wants the token: none, a wrong one, a wrong scheme.
	for _, tok := range []string{"", "wrong-token-0123456789", adminToken + "x"} {
		if st, _ := adminDo(t, f.r[0], http.MethodPost, "/admin/revocations", tok, map[string]string{"session_id": alice.SessionID}); st != http.StatusUnauthorized {
			t.Errorf("revocation with token %q: status %d, want 401", tok, st)
		}
		if st, _ := adminDo(t, f.r[0], http.MethodGet, "/admin/tunnels", tok, nil); st != http.StatusUnauthorized {
			t.Errorf("listing with token %q: status %d, want 401", tok, st)
		}
	}
	if !aliceChat[0].OpenFor(300 * time.Millisecond) {
		t.Fatal("a refused admin request closed a tunnel")
	}

	// Listing, filtered.
	st, body := adminDo(t, f.r[1], http.MethodGet, "/admin/tunnels?subject="+carol.IdentityID, adminToken, nil)
	list, _ := body["tunnels"].([]any)
	if st != http.StatusOK || len(list) != 2 {
		t.Fatalf("GET /admin/tunnels?subject=carol on replica 1: %d, %d tunnels, want 200 and 2: %v", st, len(list), body)
	}
	first, _ := list[0].(map[string]any)
	for _, k := range []string{"id", "rule", "subject", "session_id", "opened_at", "next_deadline", "next_deadline_reason", "session_expires_at", "bytes_to_upstream", "bytes_to_client", "client_address"} {
		if _, ok := first[k]; !ok {
			t.Errorf("tunnel listing lacks %q: %v", k, first)
		}
	}
	if first["session_id"] != carol.SessionID {
		t.Errorf("listed session_id %v, want %s", first["session_id"], carol.SessionID)
	}
	if _, body := adminDo(t, f.r[1], http.MethodGet, "/admin/tunnels?rule=feed&subject="+carol.IdentityID, adminToken, nil); len(body["tunnels"].([]any)) != 1 {
		t.Errorf("rule and subject filter: %v", body)
	}

	// Bad bodies are 400 with JSON.
	for _, b := range []any{map[string]string{}, map[string]string{"session_id": "x", "subject": "y"}, map[string]any{"sesion_id": "x"}} {
		if st, body := adminDo(t, f.r[0], http.MethodPost, "/admin/revocations", adminToken, b); st != http.StatusBadRequest || body["error"] == nil {
			t.Errorf("revocation body %v: %d %v, want 400 with an error", b, st, body)
		}
	}

	// By session, with a reason.
	st, body = adminDo(t, f.r[0], http.MethodPost, "/admin/revocations", adminToken,
		map[string]string{"session_id": alice.SessionID, "reason": "account locked"})
	if st != http.StatusOK || body["closed"] != float64(1) {
		t.Errorf("revocation by session on replica 0: %d %v, want 200 {closed: 1}", st, body)
	}
	expectRevoked(t, "by session", aliceChat, "account locked")
	// Kratos still accepts the session, the caches hold it: refused anyway.
	for i, r := range f.r {
		if _, status := dial(t, r, "/chat/again", tokenHeader(alice.SessionToken)); status != http.StatusUnauthorized {
			t.Errorf("replica %d: upgrade with the revoked session: %d, want 401", i, status)
		}
	}

	// Plain requests too, on the same decision path.
	req, _ := http.NewRequest(http.MethodGet, f.r[1].URL()+"/chat/plain", nil)
	req.Header.Set("X-Session-Token", alice.SessionToken)
	if code, _ := servertest.Fetch(t, req); code != http.StatusUnauthorized {
		t.Errorf("plain request with the revoked session: %d, want 401", code)
	}

	// By subject.
	if st, body := adminDo(t, f.r[2], http.MethodPost, "/admin/revocations", adminToken, map[string]string{"subject": bob.IdentityID}); st != http.StatusOK || body["closed"] != float64(1) {
		t.Errorf("revocation by subject on replica 2: %d %v", st, body)
	}
	expectRevoked(t, "by subject", bobChat, "session revoked")

	// By rule: carol's feed tunnels close, her chat tunnels stay, and she
	// may open a new feed tunnel (a rule revocation refuses nothing new).
	if st, body := adminDo(t, f.r[1], http.MethodPost, "/admin/revocations", adminToken, map[string]string{"rule": "feed"}); st != http.StatusOK || body["closed"] != float64(1) {
		t.Errorf("revocation by rule on replica 1: %d %v", st, body)
	}
	expectRevoked(t, "by rule", carolFeed, "session revoked")
	for i, tu := range carolChat {
		if !tu.OpenFor(200 * time.Millisecond) {
			t.Errorf("replica %d: carol's chat tunnel closed by a revocation of another rule", i)
		}
		tu.Echo(t, "ping")
	}
	mustDial(t, f.r[0], "/feed/again", tokenHeader(carol.SessionToken)).Echo(t, "ping")
}

// TestLogoutThroughProxyClosesEverywhere: signing out through the proxy —
// Kratos's browser flow (GET /self-service/logout?token=) and API flow
// (DELETE /self-service/logout/api) — closes the session's tunnels on all
// three replicas at once, long before the re-check would.
func TestLogoutThroughProxyClosesEverywhere(t *testing.T) {
	f := startFleet(t)

	t.Run("browser", func(t *testing.T) {
		id := f.k.RegisterBrowser(t)
		tus := f.onAll(t, "/chat/browser", cookieHeader(id))
		// The logout URL: Kratos's first step, which ends nothing.
		req, _ := http.NewRequest(http.MethodGet, f.r[1].URL()+"/.ory/kratos/public/self-service/logout/browser", nil)
		req.Header.Set("Cookie", id.CookieHeader())
		req.Header.Set("Accept", "application/json")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var lo struct {
			Token string `json:"logout_token"`
		}
		_ = json.NewDecoder(res.Body).Decode(&lo)
		res.Body.Close()
		if res.StatusCode != http.StatusOK || lo.Token == "" {
			t.Fatalf("logout/browser: %d, token %q", res.StatusCode, lo.Token)
		}
		if !tus[0].OpenFor(300 * time.Millisecond) {
			t.Fatal("creating the logout URL closed the tunnel")
		}
		// The logout itself, through replica 1.
		req, _ = http.NewRequest(http.MethodGet, f.r[1].URL()+"/.ory/kratos/public/self-service/logout?token="+lo.Token, nil)
		req.Header.Set("Cookie", id.CookieHeader())
		noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		start := time.Now()
		res, err = noFollow.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode >= 400 {
			t.Fatalf("browser logout: status %d", res.StatusCode)
		}
		expectRevoked(t, "browser logout", tus, "session revoked")
		t.Logf("browser logout to the last Close on 3 replicas: %v", time.Since(start))
	})

	t.Run("api", func(t *testing.T) {
		id := f.k.RegisterAPI(t)
		tus := f.onAll(t, "/chat/api", tokenHeader(id.SessionToken))
		b, _ := json.Marshal(map[string]string{"session_token": id.SessionToken})
		req, _ := http.NewRequest(http.MethodDelete, f.r[2].URL()+"/.ory/kratos/public/self-service/logout/api", bytes.NewReader(b))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Session-Token", id.SessionToken)
		if code, _ := servertest.Fetch(t, req); code != http.StatusNoContent {
			t.Fatalf("API logout: status %d, want Kratos's 204", code)
		}
		expectRevoked(t, "API logout", tus, "session revoked")
	})
}

// TestRedisOutageCatchUp: with Redis stopped, a revocation closes the
// tunnels of the replica that made it at once; the other replicas close
// theirs once Redis is back (the publish was retried, the readers resume
// from the last event they saw). Requests keep being served meanwhile.
func TestRedisOutageCatchUp(t *testing.T) {
	f := startFleet(t)
	id := f.k.RegisterAPI(t)
	tus := f.onAll(t, "/chat/outage", tokenHeader(id.SessionToken))

	f.redis.Stop()
	start := time.Now()
	st, body := adminDo(t, f.r[0], http.MethodPost, "/admin/revocations", adminToken, map[string]string{"session_id": id.SessionID})
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("the revocation waited %v for the broker that is down", d)
	}
	if st != http.StatusOK || body["closed"] != float64(1) {
		t.Fatalf("revocation with Redis down: %d %v", st, body)
	}
	if code, _ := tus[0].CloseWithin(closeBound); code != ws.StatusPolicyViolation {
		t.Errorf("replica 0 did not close its tunnel with Redis down: %d", code)
	}
	other := f.k.RegisterAPI(t)
	mustDial(t, f.r[1], "/chat/during", tokenHeader(other.SessionToken)).Echo(t, "ping")
	if !tus[1].OpenFor(time.Second) || !tus[2].OpenFor(10*time.Millisecond) {
		t.Fatal("replicas 1 and 2 closed while Redis was down: the test does not show catch-up")
	}
	if err := f.redis.Restart(); err != nil {
		t.Fatal(err)
	}
	for i, tu := range tus[1:] {
		if code, reason := tu.CloseWithin(20 * time.Second); code != ws.StatusPolicyViolation || reason != "session revoked" {
			t.Errorf("replica %d after Redis came back: Close %d %q", i+1, code, reason)
		}
	}
}

// TestRechecksCoalescedAtKratos: 1,000 tunnels over 10 sessions make 10
// whoami calls per re-check interval, counted by a pass-through in front
// of the real Kratos, not 1,000.
func TestRechecksCoalescedAtKratos(t *testing.T) {
	if testing.Short() {
		t.Skip("1,000 tunnels")
	}
	k := kratosShared.Get(t)
	ck := k.CountWhoami(t)
	up := wsecho.Start(t, wsecho.Options{})
	const interval = 3 * time.Second
	r := startReplica(t, replicaOptions{
		whoamiURL: ck.WhoamiURL(), kratosPublic: k.PublicURL(), upstream: up.URL,
		revalidateEvery: interval.String(),
	})
	const sessions, perSession = 10, 100
	for range sessions {
		id := k.RegisterAPI(t)
		for range perSession {
			mustDial(t, r, "/chat/many", tokenHeader(id.SessionToken))
		}
	}
	// A client has its 101 a moment before its tunnel is registered.
	deadline := time.Now().Add(30 * time.Second)
	for r.App().Tunnels.Active() != sessions*perSession {
		if time.Now().After(deadline) {
			t.Fatalf("%d tunnels open, want %d", r.App().Tunnels.Active(), sessions*perSession)
		}
		time.Sleep(20 * time.Millisecond)
	}
	before := ck.Calls()
	const rounds = 3
	time.Sleep(rounds * interval)
	calls := ck.Calls() - before
	// Each session re-checks once per interval (jitter shortens it by up
	// to a tenth): rounds or rounds+1 calls per session in the window.
	if calls < sessions*(rounds-1) || calls > sessions*(rounds+1) {
		t.Errorf("%d whoami calls at Kratos in %d intervals for %d tunnels over %d sessions, want about %d (one per session per interval)",
			calls, rounds, sessions*perSession, sessions, sessions*rounds)
	}
	t.Logf("%d tunnels, %d sessions: %d whoami calls at Kratos in %d intervals of %v", sessions*perSession, sessions, calls, rounds, interval)
	if r.App().Tunnels.Active() != sessions*perSession {
		t.Errorf("tunnels closed during the re-checks: %d open", r.App().Tunnels.Active())
	}
}
