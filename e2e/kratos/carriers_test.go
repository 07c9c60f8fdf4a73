package kratos

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestCarriersScrubbedWhicheverAuthenticatorDecides: a rule removes the
// carriers of all its authenticators, not only those of the one that
// decided. Against a real Kratos, with [cookie_session, bearer_token] (the
// shape docs/websockets.md recommends):
//
//  1. a valid cookie plus ?token=<session token>: cookie_session decides,
//     and the token reaches neither the upstream's query nor its WebSocket
//     handshake;
//  2. a valid cookie plus "Sec-WebSocket-Protocol: chat.v1, <prefix><token>":
//     the token entry is not offered upstream;
//  3. a stale cookie plus ?token= with Accept: text/html: cookie_session
//     rejects, and the login redirect's return_to does not carry the token.
func TestCarriersScrubbedWhicheverAuthenticatorDecides(t *testing.T) {
	k, up, gw := startShared(t, "5s")
	browser := k.RegisterBrowser(t)
	tok := k.RegisterAPI(t).SessionToken
	withCookie := func(id string) func(r *http.Request) {
		return func(r *http.Request) { r.Header.Set("Cookie", id) }
	}

	// 1. HTTP: the cookie decides; the query token stays behind.
	res, s := get(t, gw.URL()+"/wsq/page?token="+url.QueryEscape(tok)+"&keep=1", withCookie(browser.CookieHeader()))
	if res.StatusCode != http.StatusOK || s.Email != browser.Email {
		t.Fatalf("cookie + query token: %d, upstream saw %q, want 200 for %s", res.StatusCode, s.Email, browser.Email)
	}
	if strings.Contains(s.Query, tok) || strings.Contains(s.Query, "token=") || s.Query != "keep=1" {
		t.Errorf("cookie + query token: upstream query %q, want keep=1 only", s.Query)
	}
	// 1b. The same with ";" as the separator, which some frameworks split on.
	res, s = get(t, gw.URL()+"/wsq/page?keep=1;token="+url.QueryEscape(tok), withCookie(browser.CookieHeader()))
	if res.StatusCode != http.StatusOK || strings.Contains(s.Query, tok) || s.Query != "keep=1" {
		t.Errorf("cookie + ;token: %d, upstream query %q, want 200 and keep=1 only", res.StatusCode, s.Query)
	}
	// 1. WebSocket: the same through the handshake.
	wsBase := gw.WSURL()
	h := http.Header{"Cookie": {browser.CookieHeader()}}
	conn, _, err := wsDial(t, wsBase+"/wsq/chat?token="+url.QueryEscape(tok)+"&keep=1", h, "chat.v1")
	if err != nil {
		t.Fatalf("cookie + query token upgrade: %v", err)
	}
	conn.Close()
	hs := up.handshakes()
	if len(hs) == 0 {
		t.Fatal("the upstream saw no handshake")
	}
	if last := hs[len(hs)-1]; last.Query != "keep=1" || last.Email != browser.Email {
		t.Errorf("cookie + query token handshake: query %q for %q, want keep=1 for %s", last.Query, last.Email, browser.Email)
	}

	// 2. A valid cookie decides; the subprotocol token entry is dropped.
	conn, hs2, err := wsDial(t, wsBase+"/ws/chat", h, "chat.v1", wsTokenPrefix+tok)
	if err != nil {
		t.Fatalf("cookie + subprotocol token upgrade: %v", err)
	}
	conn.Close()
	if hs2.Protocol != "chat.v1" {
		t.Errorf("selected subprotocol %q, want chat.v1", hs2.Protocol)
	}
	hs = up.handshakes()
	last := hs[len(hs)-1]
	if last.Email != browser.Email {
		t.Errorf("subprotocol case decided for %q, want the cookie's %s", last.Email, browser.Email)
	}
	for _, p := range last.Offered {
		if strings.Contains(p, tok) || strings.HasPrefix(p, wsTokenPrefix) {
			t.Errorf("the upstream was offered the token entry %q (offered %q)", p, last.Offered)
		}
	}

	// 3. A stale cookie fails; the redirect's return_to keeps no token.
	stale := k.RegisterBrowser(t)
	k.RevokeSession(t, stale.SessionID)
	res, _ = get(t, gw.URL()+"/wsq/page?token="+url.QueryEscape(tok)+"&keep=1", func(r *http.Request) {
		r.Header.Set("Cookie", stale.CookieHeader())
		r.Header.Set("Accept", "text/html")
	})
	loc := res.Header.Get("Location")
	if res.StatusCode != http.StatusFound {
		t.Fatalf("stale cookie + query token: %d, want the login redirect", res.StatusCode)
	}
	if strings.Contains(loc, url.QueryEscape(tok)) || strings.Contains(loc, tok) || strings.Contains(loc, "token%3D") {
		t.Errorf("the login redirect carries the token: %q", loc)
	}
	if !strings.Contains(loc, "keep%3D1") {
		t.Errorf("the login redirect lost the page's other parameters: %q", loc)
	}
}
