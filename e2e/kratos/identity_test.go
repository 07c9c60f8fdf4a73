package kratos

import (
	"errors"
	"net/http"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/portcullis-proxy/portcullis/testsupport/handlertest"
	"github.com/portcullis-proxy/portcullis/testsupport/kratostest"
)

// TestIdentityReachesUpstream: a registered identity reaches the upstream
// with its cookie and with its token in every supported place, and the
// upstream sees who it is in the header mutator's headers.
func TestIdentityReachesUpstream(t *testing.T) {
	k, _, gw := startShared(t, "5s")
	browser := k.RegisterBrowser(t)
	native := k.RegisterAPI(t)
	tok := native.SessionToken

	cases := []struct {
		name      string
		path      string
		prep      func(r *http.Request)
		who       kratostest.Identity
		wantQuery string
	}{
		{"session cookie", "/web/page", func(r *http.Request) { r.AddCookie(browser.Cookie) }, browser, ""},
		{"authorization bearer", "/api/items", func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+tok) }, native, ""},
		{"x-session-token", "/api/items", func(r *http.Request) { r.Header.Set("X-Session-Token", tok) }, native, ""},
		{"query parameter, stripped upstream", "/q/items?keep=1&access_token=" + url.QueryEscape(tok), nil, native, "keep=1"},
		{"token cookie", "/c/items", func(r *http.Request) { r.AddCookie(&http.Cookie{Name: "session_token", Value: tok}) }, native, ""},
	}
	for _, tc := range cases {
		for round := range 2 { // a Kratos call, then a cache hit
			res, s := get(t, gw.URL()+tc.path, tc.prep)
			if res.StatusCode != http.StatusOK {
				t.Fatalf("%s (round %d): status %d", tc.name, round, res.StatusCode)
			}
			if s.User != tc.who.IdentityID || s.Email != tc.who.Email {
				t.Errorf("%s: upstream saw X-User %q, X-Email %q; want %q, %q", tc.name, s.User, s.Email, tc.who.IdentityID, tc.who.Email)
			}
			if s.Query != tc.wantQuery {
				t.Errorf("%s: upstream query %q, want %q", tc.name, s.Query, tc.wantQuery)
			}
		}
	}

	// A client cannot claim an identity by sending the identity headers.
	_, s := get(t, gw.URL()+"/web/page", func(r *http.Request) {
		r.AddCookie(browser.Cookie)
		r.Header.Set("X-User", "admin")
	})
	if s.User != browser.IdentityID {
		t.Errorf("spoofed X-User reached the upstream: %q", s.User)
	}

	// The decision API answers from the same pipeline with the headers.
	res, _ := get(t, gw.APIURL()+"/decisions/web/page", func(r *http.Request) { r.AddCookie(browser.Cookie) })
	if res.StatusCode != http.StatusOK || res.Header.Get("X-User") != browser.IdentityID {
		t.Errorf("decision: %d, X-User %q; want 200, %q", res.StatusCode, res.Header.Get("X-User"), browser.IdentityID)
	}
}

// TestDeniedRequests: no credentials or wrong ones never reach the
// upstream; browsers are sent to the login page with return_to, API
// clients are challenged.
func TestDeniedRequests(t *testing.T) {
	k, _, gw := startShared(t, "5s")
	login := k.PublicURL() + "/self-service/login/browser"

	// A browser without a session lands on the login page and can come back.
	res, _ := get(t, gw.URL()+"/web/page?tab=2", func(r *http.Request) {
		r.Header.Set("Accept", "text/html,application/xhtml+xml,*/*;q=0.8")
	})
	wantLoc := login + "?return_to=" + url.QueryEscape(gw.URL()+"/web/page?tab=2")
	if res.StatusCode != http.StatusFound || res.Header.Get("Location") != wantLoc {
		t.Errorf("browser without session: %d %q, want 302 %q", res.StatusCode, res.Header.Get("Location"), wantLoc)
	}

	cases := []struct {
		name       string
		path       string
		prep       func(r *http.Request)
		wantStatus int
		challenge  string
	}{
		{"api client without session", "/web/page", func(r *http.Request) { r.Header.Set("Accept", "application/json") }, 401, `Bearer realm=portcullis`},
		{"no token", "/api/items", nil, 401, `Bearer realm=portcullis`},
		{"wrong token", "/api/items", func(r *http.Request) { r.Header.Set("Authorization", "Bearer ory_st_forged") }, 401, `Bearer realm=portcullis`},
		{"wrong cookie", "/web/page", func(r *http.Request) {
			r.AddCookie(&http.Cookie{Name: kratostest.SessionCookie, Value: "forged"})
		}, 401, `Bearer realm=portcullis`},
		{"wrong query token", "/q/items?access_token=forged", nil, 401, ""},
	}
	for _, tc := range cases {
		res, _ := get(t, gw.URL()+tc.path, tc.prep)
		if res.StatusCode != tc.wantStatus || res.Header.Get("WWW-Authenticate") != tc.challenge {
			t.Errorf("%s: %d %q, want %d %q", tc.name, res.StatusCode, res.Header.Get("WWW-Authenticate"), tc.wantStatus, tc.challenge)
		}
	}
}

// TestRevokedSessionDenied: after the session is revoked in Kratos the
// request is denied at once where the cache is off, and once the cache
// entry expires elsewhere.
func TestRevokedSessionDenied(t *testing.T) {
	k, _, gw := startShared(t, "300ms")
	id := k.RegisterBrowser(t)
	withCookie := func(r *http.Request) { r.AddCookie(id.Cookie) }
	for _, path := range []string{"/web/page", "/uncached/page"} {
		if res, _ := get(t, gw.URL()+path, withCookie); res.StatusCode != http.StatusOK {
			t.Fatalf("%s before revocation: %d", path, res.StatusCode)
		}
	}
	k.RevokeSession(t, id.SessionID)
	if res, _ := get(t, gw.URL()+"/uncached/page", withCookie); res.StatusCode != http.StatusUnauthorized {
		t.Errorf("uncached after revocation: %d, want 401", res.StatusCode)
	}
	handlertest.WaitFor(t, "cached rule denies the revoked session", 15*time.Second, func() bool {
		res, _ := get(t, gw.URL()+"/web/page", withCookie)
		if res.StatusCode != http.StatusOK && res.StatusCode != http.StatusUnauthorized {
			t.Fatalf("unexpected status %d", res.StatusCode)
		}
		return res.StatusCode == http.StatusUnauthorized
	})
}

// TestKratosDownNeverAdmits: with Kratos stopped, requests are denied with
// 503 — at once for credentials not in the cache, once the entry expires
// for those that are — and never reach the upstream.
func TestKratosDownNeverAdmits(t *testing.T) {
	k := kratostest.Start(t, kratostest.Options{})
	up := newUpstream(t)
	gw := startGateway(t, k, up, "300ms")
	known, fresh := k.RegisterBrowser(t), k.RegisterAPI(t)
	if res, _ := get(t, gw.URL()+"/web/page", func(r *http.Request) { r.AddCookie(known.Cookie) }); res.StatusCode != http.StatusOK {
		t.Fatalf("before the outage: %d", res.StatusCode)
	}
	k.Stop()
	res, _ := get(t, gw.URL()+"/api/items", func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+fresh.SessionToken) })
	if res.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("fresh token with Kratos down: %d, want 503", res.StatusCode)
	}
	res, _ = get(t, gw.URL()+"/uncached/page", func(r *http.Request) { r.AddCookie(known.Cookie) })
	if res.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("uncached cookie with Kratos down: %d, want 503", res.StatusCode)
	}
	handlertest.WaitFor(t, "cached cookie denied once its entry expires", 15*time.Second, func() bool {
		res, _ := get(t, gw.URL()+"/web/page", func(r *http.Request) {
			r.AddCookie(known.Cookie)
			r.Header.Set("Accept", "application/json")
		})
		if res.StatusCode != http.StatusOK && res.StatusCode != http.StatusServiceUnavailable {
			t.Fatalf("unexpected status %d", res.StatusCode)
		}
		return res.StatusCode == http.StatusServiceUnavailable
	})
	// A browser is not sent to a login page that cannot work either: the
	// rule's redirect applies to 401 and 403 only.
	res, _ = get(t, gw.URL()+"/web/page", func(r *http.Request) {
		r.AddCookie(known.Cookie)
		r.Header.Set("Accept", "text/html")
	})
	if res.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("browser with Kratos down: %d, want 503", res.StatusCode)
	}
}

// TestWebSocketTokenInSubprotocol: a browser-style WebSocket carries its
// session token as a subprotocol entry; the upstream never sees it, the
// client is not answered with it, and revoking the session closes the
// tunnel with 1008.
func TestWebSocketTokenInSubprotocol(t *testing.T) {
	k, up, gw := startShared(t, "5s")
	id := k.RegisterAPI(t)
	wsURL := gw.WSURL() + "/ws/room"

	if _, _, err := wsDial(t, wsURL, nil, "chat.v1", wsTokenPrefix+"forged"); err == nil {
		t.Fatal("a forged token opened a tunnel")
	}
	conn, hs, err := wsDial(t, wsURL, nil, "chat.v1", wsTokenPrefix+id.SessionToken)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	if hs.Protocol != "chat.v1" {
		t.Errorf("client was answered with subprotocol %q, want chat.v1", hs.Protocol)
	}
	hsSeen := up.handshakes()
	if len(hsSeen) != 1 {
		t.Fatalf("upstream saw %d handshakes, want 1", len(hsSeen))
	}
	if !slices.Equal(hsSeen[0].Offered, []string{"chat.v1"}) || hsSeen[0].User != id.IdentityID {
		t.Errorf("upstream handshake: offered %v, X-User %q; want [chat.v1], %q", hsSeen[0].Offered, hsSeen[0].User, id.IdentityID)
	}
	if err := echoes(conn, "hello"); err != nil {
		t.Fatal(err)
	}

	k.RevokeSession(t, id.SessionID)
	conn.SetReadDeadline(time.Now().Add(15 * time.Second))
	var closed wsutil.ClosedError
	for {
		_, err := wsutil.ReadServerText(conn)
		if errors.As(err, &closed) {
			break
		}
		if err != nil {
			t.Fatalf("tunnel ended without a Close frame: %v", err)
		}
	}
	if closed.Code != ws.StatusPolicyViolation {
		t.Errorf("close code %d %q, want 1008", closed.Code, closed.Reason)
	}
}

// TestWebSocketCookie: a browser's session cookie opens a tunnel bound to
// the identity.
func TestWebSocketCookie(t *testing.T) {
	k, up, gw := startShared(t, "5s")
	id := k.RegisterBrowser(t)
	wsURL := gw.WSURL() + "/ws/room"
	conn, _, err := wsDial(t, wsURL, http.Header{"Cookie": {id.CookieHeader()}}, "chat.v1")
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	if hs := up.handshakes(); len(hs) != 1 || hs[0].User != id.IdentityID {
		t.Fatalf("upstream handshakes %+v, want one for %q", hs, id.IdentityID)
	}
	if err := echoes(conn, "ping"); err != nil {
		t.Fatal(err)
	}
}
