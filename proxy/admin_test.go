package proxy

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/portcullis-proxy/portcullis/proxy/tunnel"
)

// listedChannel is a live channel the admin API lists and revokes.
type listedChannel struct{}

func (listedChannel) Describe() tunnel.ChannelInfo { return tunnel.ChannelInfo{Kind: "test"} }
func (listedChannel) Revoke(string)                {}

// recordingRevoker closes matching channels of a real registry, as the
// revocation service does, and records what it was asked.
type recordingRevoker struct {
	reg *tunnel.Registry
	mu  sync.Mutex
	got []Revocation
}

func (r *recordingRevoker) Revoke(v Revocation) int {
	r.mu.Lock()
	r.got = append(r.got, v)
	r.mu.Unlock()
	return r.reg.Revoke(tunnel.Selector{SessionID: v.SessionID, Subject: v.Subject, Rule: v.Rule}, v.Reason)
}

func TestAdminAPI(t *testing.T) {
	if _, err := NewAdmin(AdminOptions{}); err == nil {
		t.Fatal("an admin API without a token was built")
	}
	reg := tunnel.NewRegistry()
	reg.Add(listedChannel{}, tunnel.ChannelKeys{SessionID: "s1", Subject: "alice", Rule: "chat"})
	rv := &recordingRevoker{reg: reg}
	const token = "0123456789abcdef-admin"
	a, err := NewAdmin(AdminOptions{Token: token, Channels: reg, Revoker: rv})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	for p, h := range a.Routes() {
		mux.Handle(p, h)
	}
	do := func(method, path, auth, body string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(method, path, strings.NewReader(body))
		if auth != "" {
			r.Header.Set("Authorization", auth)
		}
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, r)
		return w
	}
	for _, auth := range []string{"", "Bearer wrong", "Basic " + token, "Bearer " + token + "x", token} {
		for _, path := range []string{"/admin/tunnels", "/admin/nothing"} {
			w := do(http.MethodGet, path, auth, "")
			if w.Code != http.StatusUnauthorized || !strings.Contains(w.Body.String(), `"code":401`) {
				t.Errorf("GET %s with %q: %d %s, want 401 JSON", path, auth, w.Code, w.Body)
			}
			if strings.Contains(w.Body.String(), token) {
				t.Errorf("the answer shows the token")
			}
		}
	}
	ok := "Bearer " + token
	if w := do(http.MethodGet, "/admin/nothing", ok, ""); w.Code != http.StatusNotFound {
		t.Errorf("unknown admin path with the token: %d, want 404", w.Code)
	}
	if w := do(http.MethodGet, "/admin/tunnels?subject=alice", ok, ""); w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `"kind":"test"`) {
		t.Errorf("listing: %d %s", w.Code, w.Body)
	}
	if w := do(http.MethodGet, "/admin/tunnels?subject=bob", ok, ""); w.Body.String() != "{\"tunnels\":[]}\n" {
		t.Errorf("empty listing: %s", w.Body)
	}
	for _, body := range []string{"", "[]", `{"session_id": "s1", "rule": "chat"}`, `{"nope": 1}`, `{"reason": "x"}`} {
		if w := do(http.MethodPost, "/admin/revocations", ok, body); w.Code != http.StatusBadRequest {
			t.Errorf("POST %q: %d, want 400", body, w.Code)
		}
	}
	w := do(http.MethodPost, "/admin/revocations", ok, `{"subject": "alice", "reason": "locked"}`)
	if w.Code != http.StatusOK || w.Body.String() != "{\"closed\":1}\n" {
		t.Errorf("revocation: %d %s", w.Code, w.Body)
	}
	rv.mu.Lock()
	defer rv.mu.Unlock()
	if len(rv.got) != 1 || rv.got[0] != (Revocation{Subject: "alice", Reason: "locked", Source: SourceAdmin}) {
		t.Errorf("revoker got %+v", rv.got)
	}
}
