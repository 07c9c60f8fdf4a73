package authorizers

import (
	"encoding/base64"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/portcullis-proxy/portcullis/pipeline"
	"github.com/portcullis-proxy/portcullis/testsupport/handlertest"
)

// kratosSession builds a session shaped like the one the cookie_session
// authenticator produces from Kratos' whoami answer.
func kratosSession(t testing.TB, subject string, traits map[string]any, rawURL, remote string, groups ...string) (*http.Request, *pipeline.Session) {
	t.Helper()
	r := httptest.NewRequest(http.MethodGet, rawURL, nil)
	r.RemoteAddr = remote
	u, _ := url.Parse(rawURL)
	s := pipeline.NewSession(r, u, groups)
	s.Subject = subject
	s.Extra = map[string]any{
		"id":     "session-1",
		"active": true,
		"identity": map[string]any{
			"id":     subject,
			"traits": traits,
		},
	}
	return r, s
}

func TestLadonRequireRoleAndCIDR(t *testing.T) {
	deps, _ := handlertest.DepsWithLog(t)
	repo := "file://" + filepath.Join("testdata", "ladon", "require-role.yaml")
	b := handlertest.Enable(t, pipeline.SharedFactory(NewLadon), handlertest.JSON(t, map[string]any{"repositories": []string{repo}}), deps)
	echo, err := b.Build(handlertest.JSON(t, map[string]any{
		"required_action":   "connect",
		"required_resource": "rn:echo:{{ printIndex .MatchContext.RegexpCaptureGroups 0 }}",
	}))
	if err != nil {
		t.Fatal(err)
	}
	chat, err := b.Build(handlertest.JSON(t, map[string]any{
		"required_action":   "connect",
		"required_resource": "rn:chat:{{ printIndex .MatchContext.RegexpCaptureGroups 0 }}",
	}))
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name   string
		az     pipeline.Authorizer
		sub    string
		traits map[string]any
		remote string
		group  string
		want   int // 0 allowed, else the status
	}{
		{"role AUTHORIZED may connect", echo, "alice", map[string]any{"role": "AUTHORIZED"}, "127.0.0.1:5000", "room1", 0},
		{"other role is denied", echo, "bob", map[string]any{"role": "GUEST"}, "127.0.0.1:5000", "room1", 403},
		{"no role trait is denied", echo, "carol", map[string]any{}, "127.0.0.1:5000", "room1", 403},
		{"role of wrong type is denied", echo, "dave", map[string]any{"role": []any{"AUTHORIZED"}}, "127.0.0.1:5000", "room1", 403},
		{"explicit deny beats the allow", echo, "suspended-user", map[string]any{"role": "AUTHORIZED"}, "127.0.0.1:5000", "room1", 403},
		{"team member from trusted network", chat, "erin", map[string]any{"team": "blue"}, "127.0.0.1:6000", "blue-lobby", 0},
		{"team member from outside network", chat, "erin", map[string]any{"team": "blue"}, "192.0.2.10:6000", "blue-lobby", 403},
		{"other team", chat, "frank", map[string]any{"team": "red"}, "127.0.0.1:6000", "blue-lobby", 403},
		{"resource outside the pattern", chat, "erin", map[string]any{"team": "blue"}, "127.0.0.1:6000", "red-lobby", 403},
	}
	for _, tt := range tests {
		r, s := kratosSession(t, tt.sub, tt.traits, "http://gw.test/ws/"+tt.group, tt.remote, tt.group)
		err := tt.az.Authorize(r, s)
		if got := statusOrZero(err); got != tt.want {
			t.Errorf("%s: Authorize = %v (status %d), want %d", tt.name, err, got, tt.want)
		}
	}
}

func statusOrZero(err error) int {
	if err == nil {
		return 0
	}
	return pipeline.StatusOf(err)
}

func TestLadonRuleContextTemplates(t *testing.T) {
	deps, _ := handlertest.DepsWithLog(t)
	policies := `[{"id":"p","subjects":["user:<.*>"],"actions":["GET"],"resources":["rn:doc:<[0-9]+>"],"effect":"allow",
		"conditions":{"is_admin":{"type":"StringEqualCondition","options":{"equals":"true"}},
		              "extra.identity.verified":{"type":"BooleanCondition","options":{"value":true}}}}]`
	b := handlertest.Enable(t, pipeline.SharedFactory(NewLadon), handlertest.JSON(t, map[string]any{
		"repositories": []string{"inline://" + base64.StdEncoding.EncodeToString([]byte(policies))},
	}), deps)
	az, err := b.Build(handlertest.JSON(t, map[string]any{
		"required_action":   "{{ .MatchContext.Method }}",
		"required_resource": "rn:doc:{{ printIndex .MatchContext.RegexpCaptureGroups 0 }}",
		"subject":           "user:{{ .Subject }}",
		"context":           map[string]string{"is_admin": `{{ has "admin" .Extra.identity.traits.roles }}`},
	}))
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		roles    []any
		verified bool
		want     int
	}{
		{[]any{"admin", "dev"}, true, 0},
		{[]any{"dev"}, true, 403},
		{[]any{"admin"}, false, 403},
	} {
		r, s := kratosSession(t, "u1", map[string]any{"roles": tt.roles}, "http://gw.test/docs/42", "127.0.0.1:1", "42")
		s.Extra["identity"].(map[string]any)["verified"] = tt.verified
		if got := statusOrZero(az.Authorize(r, s)); got != tt.want {
			t.Errorf("roles %v verified %v: status %d, want %d", tt.roles, tt.verified, got, tt.want)
		}
	}
}

func TestLadonHotReloadKeepsLastGood(t *testing.T) {
	deps, hook := handlertest.DepsWithLog(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "policies.json")
	write := func(doc string) {
		t.Helper()
		// Write to a temporary name and rename, so a poll never reads half a file.
		tmp := path + ".tmp"
		if err := os.WriteFile(tmp, []byte(doc), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
	}
	allowAlice := `[{"id":"a","subjects":["alice"],"actions":["read"],"resources":["doc"],"effect":"allow"}]`
	allowBob := `[{"id":"b","subjects":["bob"],"actions":["read"],"resources":["doc"],"effect":"allow"}]`
	write(allowAlice)

	// The same repository is also served over HTTP to show both kinds reload.
	var mu sync.Mutex
	httpDoc := `- {id: h, subjects: [carol], actions: [read], resources: [doc], effect: allow}`
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		w.Write([]byte(httpDoc))
	}))
	defer srv.Close()

	b := handlertest.Enable(t, pipeline.SharedFactory(NewLadon), handlertest.JSON(t, map[string]any{
		"repositories":     []string{"file://" + path, srv.URL + "/policies.yaml"},
		"refresh_interval": "10ms",
	}), deps)
	az := handlertest.Build(t, b, handlertest.JSON(t, map[string]any{"required_action": "read", "required_resource": "doc"}))
	allowed := func(sub string) bool {
		r, s := kratosSession(t, sub, nil, "http://gw.test/doc", "127.0.0.1:1")
		return az.Authorize(r, s) == nil
	}
	eventually := func(what string, cond func() bool) {
		t.Helper()
		handlertest.WaitFor(t, what, 10*time.Second, cond)
	}
	if !allowed("alice") || allowed("bob") || !allowed("carol") {
		t.Fatal("initial policy set not in force")
	}

	write(allowBob)
	eventually("file change picked up", func() bool { return allowed("bob") && !allowed("alice") })

	mu.Lock()
	httpDoc = `[]`
	mu.Unlock()
	eventually("HTTP change picked up", func() bool { return !allowed("carol") })

	// A broken document is reported and the last good set keeps deciding.
	hook.Reset()
	write(`[{"id":"x","subjects":["mallory"],"actions":["read"],"resources":["doc"],"efect":"allow"}]`)
	eventually("bad policy reported", func() bool {
		for _, e := range hook.AllEntries() {
			if e.Level == logrus.ErrorLevel && strings.Contains(e.Message, "last good") {
				return true
			}
		}
		return false
	})
	if !allowed("bob") || allowed("mallory") {
		t.Error("after a failed reload the last good set must stay in force")
	}
}

func TestLadonPolicyValidation(t *testing.T) {
	deps, _ := handlertest.DepsWithLog(t)
	tests := []struct {
		name string
		doc  string
		want string
	}{
		{"misspelt key", `[{"id":"x","subjects":["a"],"actions":["a"],"resources":["a"],"efect":"allow"}]`, "efect"},
		{"bad effect", `[{"id":"x","subjects":["a"],"actions":["a"],"resources":["a"],"effect":"permit"}]`, "effect"},
		{"no subjects", `[{"id":"x","actions":["a"],"resources":["a"],"effect":"allow"}]`, "subjects"},
		{"missing id", `[{"subjects":["a"],"actions":["a"],"resources":["a"],"effect":"allow"}]`, "id"},
		{"duplicate id", `[{"id":"x","subjects":["a"],"actions":["a"],"resources":["a"],"effect":"allow"},{"id":"x","subjects":["b"],"actions":["a"],"resources":["a"],"effect":"allow"}]`, "also defined"},
		{"unknown condition", `[{"id":"x","subjects":["a"],"actions":["a"],"resources":["a"],"effect":"allow","conditions":{"k":{"type":"NopeCondition"}}}]`, "NopeCondition"},
		{"bad cidr", `[{"id":"x","subjects":["a"],"actions":["a"],"resources":["a"],"effect":"allow","conditions":{"remote_ip":{"type":"CIDRCondition","options":{"cidr":"10.0.0.0/99"}}}}]`, "cidr"},
		{"misspelt option", `[{"id":"x","subjects":["a"],"actions":["a"],"resources":["a"],"effect":"allow","conditions":{"k":{"type":"StringEqualCondition","options":{"equal":"v"}}}}]`, "equal"},
		{"bad pattern", `[{"id":"x","subjects":["<[>"],"actions":["a"],"resources":["a"],"effect":"allow"}]`, "pattern"},
		{"not a list", `{"id":"x"}`, "list"},
	}
	for _, tt := range tests {
		_, err := pipeline.SharedFactory(NewLadon)(handlertest.JSON(t, map[string]any{
			"repositories": []string{"inline://" + base64.StdEncoding.EncodeToString([]byte(tt.doc))},
		}), deps)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: error = %v, want one mentioning %q", tt.name, err, tt.want)
		}
	}
}

func TestLadonConfigErrors(t *testing.T) {
	deps, _ := handlertest.DepsWithLog(t)
	if _, err := pipeline.SharedFactory(NewLadon)(handlertest.JSON(t, map[string]any{}), deps); err == nil {
		t.Error("no repositories must be an error")
	}
	if _, err := pipeline.SharedFactory(NewLadon)(handlertest.JSON(t, map[string]any{"repositories": []string{"file:///does/not/exist.json"}}), deps); err == nil {
		t.Error("a repository that cannot be read at start-up must be an error")
	}
	repo := "inline://" + base64.StdEncoding.EncodeToString([]byte(`[]`))
	b := handlertest.Enable(t, pipeline.SharedFactory(NewLadon), handlertest.JSON(t, map[string]any{"repositories": []string{repo}}), deps)
	for name, rule := range map[string]map[string]any{
		"no action":          {"required_resource": "r"},
		"no resource":        {"required_action": "a"},
		"bad template":       {"required_action": "{{ .Subject", "required_resource": "r"},
		"own repositories":   {"required_action": "a", "required_resource": "r", "repositories": []string{"file:///x"}},
		"unknown key":        {"required_action": "a", "required_resource": "r", "requried": true},
		"bad context syntax": {"required_action": "a", "required_resource": "r", "context": map[string]string{"k": "{{"}},
	} {
		if _, err := b.Build(handlertest.JSON(t, rule)); err == nil {
			t.Errorf("%s: Build must fail", name)
		}
	}
	// An empty policy set denies everything.
	az := handlertest.Build(t, b, handlertest.JSON(t, map[string]any{"required_action": "a", "required_resource": "r"}))
	r, s := kratosSession(t, "x", nil, "http://gw.test/", "127.0.0.1:1")
	if err := az.Authorize(r, s); !errors.Is(err, pipeline.ErrForbidden) {
		t.Errorf("empty policy set: %v, want 403", err)
	}
}
