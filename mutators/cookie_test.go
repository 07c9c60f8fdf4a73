package mutators

import (
	"net/http"
	"testing"

	"github.com/portcullis-proxy/portcullis/pipeline"
	"github.com/portcullis-proxy/portcullis/testsupport/handlertest"
)

func TestCookieMutator(t *testing.T) {
	b := handlertest.Enable(t, pipeline.TypedFactory(NewCookie), nil, handlertest.Deps(t))
	m, err := b.Build(handlertest.JSON(t, map[string]any{"cookies": map[string]string{
		"user":  "{{ .Subject }}",
		"room":  "{{ printIndex .MatchContext.RegexpCaptureGroups 0 }}",
		"email": "{{ .Extra.identity.traits.email | b64enc }}",
	}}))
	if err != nil {
		t.Fatal(err)
	}
	r, s := newSession(t, "alice", "http://gw.test/ws/lobby", "lobby")
	r.AddCookie(&http.Cookie{Name: "user", Value: "mallory"})
	if err := m.Mutate(r, s); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"user": "alice", "room": "lobby", "email": "YWxpY2VAZXhhbXBsZS50ZXN0"}
	for k, v := range want {
		if s.Cookies[k] != v {
			t.Errorf("cookie %s = %q, want %q", k, s.Cookies[k], v)
		}
	}
	if c, _ := r.Cookie("user"); c.Value != "mallory" {
		t.Error("the mutator must not write to the request; the proxy applies Session.Cookies")
	}
}

func TestCookieMutatorRejectsUnsafeValues(t *testing.T) {
	b, _ := pipeline.TypedFactory(NewCookie)(nil, handlertest.Deps(t))
	m := handlertest.Build(t, b, handlertest.JSON(t, map[string]any{"cookies": map[string]string{"v": "{{ .Subject }}"}}))
	for _, sub := range []string{"a;admin=1", "a\"b", "a,b", "a\r\nX: y", "é"} {
		r, s := newSession(t, sub, "http://gw.test/")
		if err := m.Mutate(r, s); pipeline.StatusOf(err) != http.StatusInternalServerError {
			t.Errorf("subject %q: Mutate = %v, want 500", sub, err)
		}
		if _, set := s.Cookies["v"]; set {
			t.Errorf("subject %q: an unsafe value must not be set", sub)
		}
	}
}

func TestCookieConfigErrors(t *testing.T) {
	b, _ := pipeline.TypedFactory(NewCookie)(nil, handlertest.Deps(t))
	for name, cfg := range map[string]map[string]any{
		"no cookies":   {},
		"empty map":    {"cookies": map[string]string{}},
		"bad name":     {"cookies": map[string]string{"a b": "x"}},
		"bad template": {"cookies": map[string]string{"a": "{{"}},
		"unknown key":  {"cookie": map[string]string{"a": "x"}},
	} {
		if _, err := b.Build(handlertest.JSON(t, cfg)); err == nil {
			t.Errorf("%s: Build must fail", name)
		}
	}
}
