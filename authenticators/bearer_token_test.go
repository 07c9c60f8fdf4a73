package authenticators

import (
	"errors"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/portcullis-proxy/portcullis/pipeline"
)

func TestBearerTokenPlaces(t *testing.T) {
	k := kratosShared.Get(t)
	id := k.RegisterAPI(t)
	tok := id.SessionToken
	const wsPrefix = "session.token."
	cases := []struct {
		name      string
		cfg       map[string]any
		prep      func(r *http.Request)
		want      int // 0: admitted, -1: not responsible, else the status
		scrubQ    []string
		scrubProt []string
	}{
		{"authorization bearer", nil, func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+tok) }, 0, nil, nil},
		{"authorization lower-case scheme", nil, func(r *http.Request) { r.Header.Set("Authorization", "bearer "+tok) }, 0, nil, nil},
		{"authorization basic", nil, func(r *http.Request) { r.Header.Set("Authorization", "Basic dTpw") }, -1, nil, nil},
		{"no credentials", nil, nil, -1, nil, nil},
		{"wrong token", nil, func(r *http.Request) { r.Header.Set("Authorization", "Bearer ory_st_wrong") }, http.StatusUnauthorized, nil, nil},
		{"x-session-token accepted", map[string]any{"accept_x_session_token": true},
			func(r *http.Request) { r.Header.Set("X-Session-Token", tok) }, 0, nil, nil},
		{"x-session-token not configured", nil,
			func(r *http.Request) { r.Header.Set("X-Session-Token", tok) }, -1, nil, nil},
		{"x-session-token as token_from header", map[string]any{"token_from": map[string]any{"header": "X-Session-Token"}},
			func(r *http.Request) { r.Header.Set("X-Session-Token", tok) }, 0, nil, nil},
		{"query parameter", map[string]any{"token_from": map[string]any{"query_parameter": "access_token"}},
			func(r *http.Request) { r.URL.RawQuery = "x=1&access_token=" + tok }, 0, []string{"access_token"}, nil},
		{"query parameter wrong", map[string]any{"token_from": map[string]any{"query_parameter": "access_token"}},
			func(r *http.Request) { r.URL.RawQuery = "access_token=nope" }, http.StatusUnauthorized, []string{"access_token"}, nil},
		{"cookie", map[string]any{"token_from": map[string]any{"cookie": "session_token"}},
			func(r *http.Request) { r.AddCookie(&http.Cookie{Name: "session_token", Value: tok}) }, 0, nil, nil},
		{"websocket protocol", map[string]any{"token_from": map[string]any{"websocket_protocol": wsPrefix}},
			func(r *http.Request) { r.Header.Add("Sec-WebSocket-Protocol", "chat.v1, "+wsPrefix+tok) }, 0, nil, []string{wsPrefix + tok}},
		{"websocket protocol on a second line", map[string]any{"token_from": map[string]any{"websocket_protocol": wsPrefix}},
			func(r *http.Request) {
				r.Header.Add("Sec-WebSocket-Protocol", "chat.v1")
				r.Header.Add("Sec-WebSocket-Protocol", wsPrefix+tok)
			}, 0, nil, []string{wsPrefix + tok}},
		{"websocket protocol absent", map[string]any{"token_from": map[string]any{"websocket_protocol": wsPrefix}},
			func(r *http.Request) { r.Header.Set("Sec-WebSocket-Protocol", "chat.v1") }, -1, nil, nil},
		{"prefix matches", map[string]any{"prefix": "ory_st_"},
			func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+tok) }, 0, nil, nil},
		{"prefix does not match", map[string]any{"prefix": "ory_at_"},
			func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+tok) }, -1, nil, nil},
	}
	for _, tc := range cases {
		cfg := map[string]any{"check_session_url": k.WhoamiURL()}
		for key, v := range tc.cfg {
			cfg[key] = v
		}
		a := buildSession(t, pipeline.TypedFactory(NewBearerToken), cfg)
		s, err := authenticate(a, tc.prep)
		switch tc.want {
		case -1:
			if !errors.Is(err, pipeline.ErrNotResponsible) {
				t.Errorf("%s: err = %v, want not responsible", tc.name, err)
			}
			continue
		case 0:
			if err != nil {
				t.Errorf("%s: %v", tc.name, err)
				continue
			}
			if s.Subject != id.IdentityID || s.SessionID != id.SessionID || s.Authenticator != "bearer_token" {
				t.Errorf("%s: Subject, SessionID, Authenticator = %q, %q, %q; want %q, %q, bearer_token",
					tc.name, s.Subject, s.SessionID, s.Authenticator, id.IdentityID, id.SessionID)
			}
		default:
			wantStatus(t, tc.name, err, tc.want)
			noCredentialLeak(t, err, tok)
		}
		if !slices.Equal(s.Scrub.QueryParams, tc.scrubQ) {
			t.Errorf("%s: Scrub.QueryParams = %v, want %v", tc.name, s.Scrub.QueryParams, tc.scrubQ)
		}
		if !slices.Equal(s.Scrub.Subprotocols, tc.scrubProt) {
			t.Errorf("%s: Scrub.Subprotocols = %v, want %v", tc.name, s.Scrub.Subprotocols, tc.scrubProt)
		}
	}
}

// TestBearerTokenRevokedIdentity: revoking all of an identity's sessions
// denies its token once the cache no longer vouches for it.
func TestBearerTokenRevokedIdentity(t *testing.T) {
	k := kratosShared.Get(t)
	id := k.RegisterAPI(t)
	a := buildSession(t, pipeline.TypedFactory(NewBearerToken), map[string]any{"check_session_url": k.WhoamiURL(), "cache": map[string]any{"ttl": "2s"}})
	clock := newTestClock()
	checkerOf(a).cache.now = clock.Now
	withToken := func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+id.SessionToken) }
	if _, err := authenticate(a, withToken); err != nil {
		t.Fatal(err)
	}
	k.RevokeIdentitySessions(t, id.IdentityID)
	clock.Advance(2 * time.Second)
	_, err := authenticate(a, withToken)
	wantStatus(t, "revoked identity", err, http.StatusUnauthorized)
}
