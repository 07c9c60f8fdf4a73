package authenticators

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/portcullis-proxy/portcullis/pipeline"
	"github.com/portcullis-proxy/portcullis/testsupport/kratostest"
)

func TestCookieSessionAcceptsKratosCookie(t *testing.T) {
	k := kratosShared.Get(t)
	id := k.RegisterBrowser(t)
	a := buildSession(t, pipeline.TypedFactory(NewCookieSession), map[string]any{
		"check_session_url": k.WhoamiURL(),
		"only":              []string{kratostest.SessionCookie},
		"extra_from":        "@this",
	})
	s, err := authenticate(a, func(r *http.Request) {
		r.AddCookie(&http.Cookie{Name: "theme", Value: "dark"})
		r.AddCookie(id.Cookie)
	})
	if err != nil {
		t.Fatalf("Authenticate: %v", err)
	}
	if s.Subject != id.IdentityID {
		t.Errorf("Subject = %q, want %q", s.Subject, id.IdentityID)
	}
	if s.Extra["id"] != id.SessionID {
		t.Errorf("Extra[id] = %v, want the session id %q", s.Extra["id"], id.SessionID)
	}
	identity, _ := s.Extra["identity"].(map[string]any)
	traits, _ := identity["traits"].(map[string]any)
	if traits["email"] != id.Email {
		t.Errorf("Extra.identity.traits.email = %v, want %q", traits["email"], id.Email)
	}
	if s.SessionID != id.SessionID || s.Authenticator != "cookie_session" {
		t.Errorf("SessionID, Authenticator = %q, %q; want %q, cookie_session", s.SessionID, s.Authenticator, id.SessionID)
	}
	if s.ExpiresAt.Sub(id.ExpiresAt).Abs() > time.Second {
		t.Errorf("ExpiresAt = %v, want %v", s.ExpiresAt, id.ExpiresAt)
	}
	if s.Revalidator == nil {
		t.Fatal("no Revalidator")
	}
	if _, err := s.Revalidator.Revalidate(context.Background()); err != nil {
		t.Errorf("Revalidate: %v", err)
	}
	// A cache hit gives the same identity and an Extra of its own.
	s.Extra["mutated"] = true
	s2, err := authenticate(a, func(r *http.Request) { r.AddCookie(id.Cookie) })
	if err != nil || s2.Subject != id.IdentityID {
		t.Fatalf("second Authenticate = %q, %v", s2.Subject, err)
	}
	if _, leaked := s2.Extra["mutated"]; leaked {
		t.Error("a request's change to Extra reached the cached session")
	}
}

func TestCookieSessionResponsibility(t *testing.T) {
	k := kratosShared.Get(t)
	id := k.RegisterBrowser(t)
	only := buildSession(t, pipeline.TypedFactory(NewCookieSession), map[string]any{
		"check_session_url": k.WhoamiURL(), "only": []string{kratostest.SessionCookie},
	})
	any := buildSession(t, pipeline.TypedFactory(NewCookieSession), map[string]any{"check_session_url": k.WhoamiURL()})
	cases := []struct {
		name    string
		a       pipeline.Authenticator
		cookies []*http.Cookie
		want    int // 0: admitted, -1: not responsible, else the status
	}{
		{"no cookies", only, nil, -1},
		{"no cookies, any", any, nil, -1},
		{"other cookie only", only, []*http.Cookie{{Name: "theme", Value: "dark"}}, -1},
		{"other cookie, any", any, []*http.Cookie{{Name: "theme", Value: "dark"}}, http.StatusUnauthorized},
		{"session cookie", only, []*http.Cookie{id.Cookie}, 0},
		{"session cookie, any", any, []*http.Cookie{{Name: "theme", Value: "dark"}, id.Cookie}, 0},
		{"wrong session cookie", only, []*http.Cookie{{Name: kratostest.SessionCookie, Value: "MTY5-not-a-session"}}, http.StatusUnauthorized},
	}
	for _, tc := range cases {
		s, err := authenticate(tc.a, func(r *http.Request) {
			for _, c := range tc.cookies {
				r.AddCookie(c)
			}
		})
		switch tc.want {
		case -1:
			if !errors.Is(err, pipeline.ErrNotResponsible) {
				t.Errorf("%s: err = %v, want not responsible", tc.name, err)
			}
		case 0:
			if err != nil || s.Subject != id.IdentityID {
				t.Errorf("%s: Subject, err = %q, %v; want %q", tc.name, s.Subject, err, id.IdentityID)
			}
		default:
			wantStatus(t, tc.name, err, tc.want)
			noCredentialLeak(t, err, id.Cookie.Value)
		}
	}
}

// TestCookieSessionOnlyForwardsListedCookies: with `only`, unrelated
// cookies never reach the session store.
func TestCookieSessionOnlyForwardsListedCookies(t *testing.T) {
	k := kratosShared.Get(t)
	id := k.RegisterBrowser(t)
	kratosFront := newSessionFront(t, k, false)
	plainFront := newSessionFront(t, k, true)
	for name, cfg := range map[string]map[string]any{
		"kratos": {"check_session_url": kratosFront.URL + "/sessions/whoami"},
		"plain":  {"check_session_url": plainFront.URL + "/check", "preserve_path": true, "forward_http_headers": []string{"Cookie"}},
	} {
		front := kratosFront
		if name == "plain" {
			front = plainFront
		}
		cfg["only"] = []string{kratostest.SessionCookie}
		a := buildSession(t, pipeline.TypedFactory(NewCookieSession), cfg)
		if _, err := authenticate(a, func(r *http.Request) {
			r.AddCookie(&http.Cookie{Name: "app_secret", Value: "s3"})
			r.AddCookie(id.Cookie)
		}); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got := front.lastRequest().Header.Values("Cookie"); len(got) != 1 || got[0] != id.CookieHeader() {
			t.Errorf("%s: the store received Cookie %q, want only the session cookie", name, got)
		}
	}
}

// TestCookieSessionRevokedAfterTTL: a revoked session is honoured while its
// cache entry lives (the documented trade-off) and denied once it expires.
func TestCookieSessionRevokedAfterTTL(t *testing.T) {
	k := kratosShared.Get(t)
	id := k.RegisterBrowser(t)
	a := buildSession(t, pipeline.TypedFactory(NewCookieSession), map[string]any{
		"check_session_url": k.WhoamiURL(), "cache": map[string]any{"ttl": "5s"},
	})
	clock := newTestClock()
	checkerOf(a).cache.now = clock.Now
	withCookie := func(r *http.Request) { r.AddCookie(id.Cookie) }

	if _, err := authenticate(a, withCookie); err != nil {
		t.Fatal(err)
	}
	k.RevokeSession(t, id.SessionID)
	clock.Advance(4 * time.Second)
	if _, err := authenticate(a, withCookie); err != nil {
		t.Fatalf("within the ttl the cached session is still honoured: %v", err)
	}
	clock.Advance(2 * time.Second)
	_, err := authenticate(a, withCookie)
	wantStatus(t, "after the ttl", err, http.StatusUnauthorized)
	// A rejection is not cached: it stays a rejection.
	_, err = authenticate(a, withCookie)
	wantStatus(t, "again", err, http.StatusUnauthorized)
}

// TestCookieSessionExpired: Kratos sessions with a short lifespan are denied
// once they expire, whatever the cache ttl.
func TestCookieSessionExpired(t *testing.T) {
	k := kratostest.Start(t, kratostest.Options{SessionLifespan: 2 * time.Second})
	id := k.RegisterBrowser(t)
	cached := buildSession(t, pipeline.TypedFactory(NewCookieSession), map[string]any{
		"check_session_url": k.WhoamiURL(), "cache": map[string]any{"ttl": "1h"},
	})
	s, err := authenticate(cached, func(r *http.Request) { r.AddCookie(id.Cookie) })
	if err != nil {
		t.Fatalf("fresh session: %v", err)
	}
	if s.ExpiresAt.After(time.Now().Add(3 * time.Second)) {
		t.Fatalf("ExpiresAt = %v, want within the 2s lifespan", s.ExpiresAt)
	}
	// Wait for the session to end in Kratos (no assertion on the duration).
	time.Sleep(time.Until(s.ExpiresAt) + 100*time.Millisecond)
	_, err = authenticate(cached, func(r *http.Request) { r.AddCookie(id.Cookie) })
	wantStatus(t, "expired session, cached", err, http.StatusUnauthorized)
	uncached := buildSession(t, pipeline.TypedFactory(NewCookieSession), map[string]any{
		"check_session_url": k.WhoamiURL(), "cache": map[string]any{"enabled": false},
	})
	_, err = authenticate(uncached, func(r *http.Request) { r.AddCookie(id.Cookie) })
	wantStatus(t, "expired session, uncached", err, http.StatusUnauthorized)
}
