package rules_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/portcullis-proxy/portcullis/pipeline"
	"github.com/portcullis-proxy/portcullis/rules"
	"github.com/portcullis-proxy/portcullis/testsupport/handlertest"
)

// chatRule is a rule document for a chat tunnel, with the parts a test
// changes as parameters.
type chatRule struct {
	id, url, authn, authz, mutator, upstream, websocket, description string
}

func (c chatRule) doc() string {
	r := chatRule{id: "chat", url: "http://app/chat/<[a-z0-9]+>", authn: "{handler: anonymous}",
		authz: "{handler: allow}", mutator: "{handler: noop}", upstream: "http://chat:8080"}
	for _, p := range []struct {
		dst *string
		v   string
	}{
		{&r.id, c.id}, {&r.url, c.url}, {&r.authn, c.authn}, {&r.authz, c.authz},
		{&r.mutator, c.mutator}, {&r.upstream, c.upstream},
	} {
		if p.v != "" {
			*p.dst = p.v
		}
	}
	var b strings.Builder
	b.WriteString("- id: " + r.id + "\n")
	if c.description != "" {
		b.WriteString("  description: " + c.description + "\n")
	}
	b.WriteString("  match: {url: \"" + r.url + "\", methods: [GET]}\n")
	b.WriteString("  authenticators: [" + r.authn + "]\n")
	b.WriteString("  authorizer: " + r.authz + "\n")
	b.WriteString("  mutators: [" + r.mutator + "]\n")
	b.WriteString("  upstream: {url: \"" + r.upstream + "\"}\n")
	if c.websocket != "" {
		b.WriteString("  websocket: " + c.websocket + "\n")
	}
	return b.String()
}

var otherRule = handlertest.Rule{ID: "other", URL: "http://app/other/<.*>", Upstream: "http://other:8080"}.YAML()

// admission is the request of a tunnel opened at /chat/room1 under c.
func admission(t *testing.T, c *rules.Compiled) *pipeline.Admission {
	r := httptest.NewRequest(http.MethodGet, "http://app/chat/room1?x=1", nil)
	s := pipeline.NewSession(r, mustURL(t, "http://app/chat/room1?x=1"), nil)
	return c.Admit(s, "192.0.2.1:4711")
}

// TestReevaluate: what a new rule set means for a channel opened under the
// chat rule. The outcome follows what changed in the rule's definition, not
// where the rule is written.
func TestReevaluate(t *testing.T) {
	base := chatRule{}
	type want struct{ kept, policy, authorizer bool }
	cases := []struct {
		name string
		docs string
		want want
	}{
		{"identical", base.doc(), want{kept: true}},
		{"moved after another rule", otherRule + base.doc(), want{kept: true}},
		{"description changed", chatRule{description: "the chat"}.doc(), want{kept: true}},
		{"error handlers added", base.doc() + "  errors: [{handler: json}]\n", want{kept: true}},
		{"match widened, still the chat rule", chatRule{url: "http://app/chat/<.*>"}.doc(), want{kept: true}},
		{"removed", otherRule, want{}},
		{"match narrowed, request matches another rule", chatRule{url: "http://app/chat/lobby"}.doc() +
			handlertest.Rule{ID: "rooms", URL: "http://app/chat/room<[0-9]>", Upstream: "http://chat:8080"}.YAML(),
			want{}},
		{"id changed", chatRule{id: "chat2"}.doc(), want{}},
		{"now overlapping", base.doc() + chatRule{id: "chat2", url: "http://app/chat/<room[0-9]>"}.doc() + "", want{kept: true}},
		{"changed and overlapping", chatRule{websocket: "{max_lifetime: 1m}"}.doc() + chatRule{id: "chat2", url: "http://app/chat/<room[0-9]>"}.doc(), want{}},
		{"authenticator changed", chatRule{authn: "{handler: noop}"}.doc(), want{}},
		{"authenticator config changed", chatRule{authn: "{handler: anonymous, config: {subject: guest}}"}.doc(), want{}},
		{"mutator changed", chatRule{mutator: "{handler: header, config: {headers: {X-User: \"{{ print .Subject }}\"}}}"}.doc(), want{}},
		{"upstream changed", chatRule{upstream: "http://chat-v2:8080"}.doc(), want{}},
		{"policy changed", chatRule{websocket: "{max_lifetime: 1m}"}.doc(), want{kept: true, policy: true}},
		{"policy restated with its defaults", chatRule{websocket: "{max_lifetime: 1h, idle_timeout: 10m}"}.doc(), want{kept: true}},
		{"authorizer changed", chatRule{authz: "{handler: deny}"}.doc(), want{kept: true, authorizer: true, policy: true}},
		{"authorizer changed, reauthorize stated", chatRule{authz: "{handler: deny}", websocket: "{reauthorize: false}"}.doc(), want{kept: true, authorizer: true}},
	}
	comp := compiler(t, rules.Regexp)
	old, err := compile(t, comp, "old.yml", base.doc())
	if err != nil {
		t.Fatal(err)
	}
	chat, _ := old.Get("chat")
	a := admission(t, chat)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			next, err := compile(t, comp, "new.yml", tc.docs)
			if err != nil {
				t.Fatal(err)
			}
			got := next.Reevaluate(chat, a)
			have := want{kept: got.Rule != nil, policy: got.PolicyChanged, authorizer: got.AuthorizerChanged}
			if have != tc.want {
				t.Errorf("Reevaluate = %+v, want %+v", have, tc.want)
			}
			if got.Rule != nil {
				if n, _ := next.Get("chat"); got.Rule != n {
					t.Errorf("Reevaluate kept the channel under %p, want the new set's chat rule %p", got.Rule, n)
				}
			}
		})
	}
}

// TestReevaluateGlobalConfig: a configuration reload that changes a
// handler's global config changes every rule using the handler.
func TestReevaluateGlobalConfig(t *testing.T) {
	globals := map[string]json.RawMessage{}
	comp := compiler(t, rules.Regexp)
	comp.GlobalConfig = func(k pipeline.Kind, name string) json.RawMessage { return globals[k.ConfigKey()+"."+name] }
	doc := chatRule{authz: "{handler: deny}", websocket: "{reauthorize: true}"}.doc()
	old, err := compile(t, comp, "rules.yml", doc)
	if err != nil {
		t.Fatal(err)
	}
	chat, _ := old.Get("chat")
	a := admission(t, chat)
	for _, tc := range []struct {
		name, key, config string
		kept, authorizer  bool
	}{
		{"an unused handler's", "authorizers.allow", `{"x":1}`, true, false},
		{"the authorizer's", "authorizers.deny", `{"x":1}`, true, true},
		{"the authenticator's", "authenticators.anonymous", `{"subject":"guest"}`, false, false},
		{"a mutator's", "mutators.noop", `{"x":1}`, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clear(globals)
			globals[tc.key] = json.RawMessage(tc.config)
			next, err := compile(t, comp, "rules.yml", doc)
			if err != nil {
				t.Fatal(err)
			}
			got := next.Reevaluate(chat, a)
			if (got.Rule != nil) != tc.kept || got.AuthorizerChanged != tc.authorizer || got.PolicyChanged {
				t.Errorf("Reevaluate = %+v, want kept %v, authorizer changed %v, policy unchanged", got, tc.kept, tc.authorizer)
			}
		})
	}
}

// TestReauthorizeDefault: reauthorize is on by default unless the
// authorizer is allow; a rule or the configuration's websocket block may
// set it either way.
func TestReauthorizeDefault(t *testing.T) {
	on, off := true, false
	cases := []struct {
		authz, websocket string
		defaults         *bool
		want             bool
	}{
		{"{handler: allow}", "", nil, false},
		{"{handler: deny}", "", nil, true},
		{"{handler: remote_json, config: {remote: \"http://pdp/\", payload: \"{}\"}}", "", nil, true},
		{"{handler: allow}", "{reauthorize: true}", nil, true},
		{"{handler: deny}", "{reauthorize: false}", nil, false},
		{"{handler: deny}", "", &off, false},
		{"{handler: allow}", "", &on, true},
		{"{handler: allow}", "{reauthorize: false}", &on, false},
	}
	for _, tc := range cases {
		comp := compiler(t, rules.Regexp)
		if tc.defaults != nil {
			p, err := (&rules.WebSocket{Reauthorize: tc.defaults}).Apply(rules.DefaultWebSocketPolicy())
			if err != nil {
				t.Fatal(err)
			}
			comp.WebSocketDefaults = p
		}
		set, err := compile(t, comp, "rules.yml", chatRule{authz: tc.authz, websocket: tc.websocket}.doc())
		if err != nil {
			t.Fatal(err)
		}
		c, _ := set.Get("chat")
		if c.WebSocketPolicy.Reauthorize != tc.want {
			def := "unset"
			if tc.defaults != nil {
				def = map[bool]string{true: "true", false: "false"}[*tc.defaults]
			}
			t.Errorf("authorizer %s, websocket %q, configuration default %s: reauthorize = %v, want %v",
				tc.authz, tc.websocket, def, c.WebSocketPolicy.Reauthorize, tc.want)
		}
	}
}

// decisionServer is a real HTTP decision API on loopback: it records the
// payload of every call and answers with the status set last.
type decisionServer struct {
	*httptest.Server
	mu       sync.Mutex
	status   int
	payloads []string
	headers  []http.Header
}

func newDecisionServer(t *testing.T) *decisionServer {
	d := &decisionServer{status: http.StatusOK}
	d.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		d.mu.Lock()
		d.payloads = append(d.payloads, string(b))
		d.headers = append(d.headers, r.Header.Clone())
		status := d.status
		d.mu.Unlock()
		w.WriteHeader(status)
	}))
	t.Cleanup(d.Close)
	return d
}

func (d *decisionServer) answer(status int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.status = status
}

func (d *decisionServer) last() (string, http.Header) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.payloads) == 0 {
		return "", nil
	}
	return d.payloads[len(d.payloads)-1], d.headers[len(d.headers)-1]
}

// TestReauthorize runs a rule's remote_json authorizer again for a
// channel: the payload is rendered with the refreshed session and the
// original request's capture groups, the client's Authorization header
// goes along, and the decision API's answer decides.
func TestReauthorize(t *testing.T) {
	pdp := newDecisionServer(t)
	authz := `{handler: remote_json, config: {remote: "` + pdp.URL + `", payload: "{\"subject\": \"{{ print .Subject }}\", \"room\": \"{{ printIndex .MatchContext.RegexpCaptureGroups 0 }}\", \"plan\": \"{{ print .Extra.plan }}\"}"}}`
	set, err := compile(t, compiler(t, rules.Regexp), "rules.yml", chatRule{url: "http://app/chat/<[a-z0-9]+>", authz: authz}.doc())
	if err != nil {
		t.Fatal(err)
	}
	chat, _ := set.Get("chat")
	r := httptest.NewRequest(http.MethodGet, "http://app/chat/room1", nil)
	r.Header.Set("Authorization", "Bearer opaque")
	s := pipeline.NewSession(r, mustURL(t, "http://app/chat/room1"), []string{"room1"})
	a := chat.Admit(s, "192.0.2.1:4711")
	r.Header.Set("Authorization", "Bearer changed-after-admission")

	id := pipeline.Identity{Subject: "alice", Extra: map[string]any{"plan": "gold"}}
	if err := chat.Reauthorize(context.Background(), a, id); err != nil {
		t.Fatalf("Reauthorize with the API allowing = %v", err)
	}
	body, header := pdp.last()
	if want := `{"subject": "alice", "room": "room1", "plan": "gold"}`; body != want {
		t.Errorf("payload = %s, want %s", body, want)
	}
	if got := header.Get("Authorization"); got != "Bearer opaque" {
		t.Errorf("Authorization sent = %q, want the admitting request's", got)
	}

	pdp.answer(http.StatusForbidden)
	err = chat.Reauthorize(context.Background(), a, pipeline.Identity{Subject: "alice", Extra: map[string]any{"plan": "free"}})
	var se *rules.StageError
	if !errors.As(err, &se) || se.Stage != rules.StageAuthorizer || se.Handler != "remote_json" || pipeline.StatusOf(err) != http.StatusForbidden {
		t.Errorf("Reauthorize with the API denying = %v, want a 403 from the authorizer stage", err)
	}
	if body, _ := pdp.last(); !strings.Contains(body, `"plan": "free"`) {
		t.Errorf("payload = %s, want the refreshed extra", body)
	}

	pdp.answer(http.StatusBadGateway)
	if err := chat.Reauthorize(context.Background(), a, id); pipeline.StatusOf(err) != http.StatusServiceUnavailable {
		t.Errorf("Reauthorize with the API failing = %v (status %d), want 503", err, pipeline.StatusOf(err))
	}

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + l.Addr().String()
	l.Close()
	unreachable := strings.Replace(authz, pdp.URL, closed, 1)
	set, err = compile(t, compiler(t, rules.Regexp), "rules.yml", chatRule{authz: unreachable}.doc())
	if err != nil {
		t.Fatal(err)
	}
	chat, _ = set.Get("chat")
	if err := chat.Reauthorize(context.Background(), a, id); pipeline.StatusOf(err) != http.StatusServiceUnavailable {
		t.Errorf("Reauthorize with the API unreachable = %v (status %d), want 503", err, pipeline.StatusOf(err))
	}
}

// TestReauthorizeNoLongerMatches: an admission the rule's pattern does not
// match (the rule was edited), or one that kept no request header (its rule
// did not re-authorize when it opened), is denied without calling the
// authorizer.
func TestReauthorizeNoLongerMatches(t *testing.T) {
	comp := compiler(t, rules.Regexp)
	lobby, err := compile(t, comp, "rules.yml", chatRule{url: "http://app/chat/lobby", authz: "{handler: allow}", websocket: "{reauthorize: true}"}.doc())
	if err != nil {
		t.Fatal(err)
	}
	chat, _ := lobby.Get("chat")
	if err := chat.Reauthorize(context.Background(), admission(t, chat), pipeline.Identity{Subject: "alice"}); !errors.Is(err, rules.ErrNoLongerMatches) {
		t.Errorf("Reauthorize of a request the pattern no longer matches = %v, want ErrNoLongerMatches", err)
	}
	plain, err := compile(t, comp, "rules.yml", chatRule{}.doc())
	if err != nil {
		t.Fatal(err)
	}
	allow, _ := plain.Get("chat")
	a := admission(t, allow)
	if a.Reauthorizable() {
		t.Fatal("an allow rule's admission kept the request header")
	}
	rooms, err := compile(t, comp, "rules.yml", chatRule{websocket: "{reauthorize: true}"}.doc())
	if err != nil {
		t.Fatal(err)
	}
	chat, _ = rooms.Get("chat")
	if err := chat.Reauthorize(context.Background(), admission(t, chat), pipeline.Identity{Subject: "alice"}); err != nil {
		t.Fatalf("Reauthorize of an admission the rule matches = %v", err)
	}
	if err := chat.Reauthorize(context.Background(), a, pipeline.Identity{Subject: "alice"}); !errors.Is(err, rules.ErrNoLongerMatches) {
		t.Errorf("Reauthorize of an admission without its header = %v, want ErrNoLongerMatches", err)
	}
}

// TestRepositoryOnSwap: each set that replaces a serving one is handed to
// OnSwap with the set it replaces, before it serves, by a changed source and
// by Reconfigure alike; neither the first load nor a change that does not
// compile calls it.
func TestRepositoryOnSwap(t *testing.T) {
	var mu sync.Mutex
	var swaps [][2]string // the rule ids of the old and the new set
	ids := func(s *rules.Set) string {
		var out []string
		for _, c := range s.Rules() {
			out = append(out, c.ID)
		}
		return strings.Join(out, ",")
	}
	doc := func(ids ...string) string {
		var b strings.Builder
		for _, id := range ids {
			b.WriteString(ruleDoc(id, "http://app/"+id, "GET"))
		}
		return b.String()
	}
	inline := func(d string) string { return "inline://" + base64.StdEncoding.EncodeToString([]byte(d)) }
	var repo *rules.Repository
	repo = &rules.Repository{
		Locations: []string{inline(doc("a"))},
		Compiler:  compiler(t, rules.Regexp),
		OnSwap: func(old, next *rules.Set) {
			mu.Lock()
			defer mu.Unlock()
			swaps = append(swaps, [2]string{ids(old), ids(next)})
			if serving := repo.Current(); serving != old {
				t.Errorf("OnSwap called while %q serves, want the old set %q still serving", ids(serving), ids(old))
			}
		},
	}
	ctx := context.Background()
	if err := repo.Load(ctx); err != nil {
		t.Fatal(err)
	}
	if err := repo.Reconfigure(ctx, []string{inline(doc("a", "b"))}, repo.Compiler, nil); err != nil {
		t.Fatal(err)
	}
	if err := repo.Reconfigure(ctx, []string{inline("- id: broken\n  match: {url: \"http://app/<(\", methods: [GET]}\n")}, repo.Compiler, nil); err == nil {
		t.Fatal("a broken rule set was installed")
	}
	if err := repo.Reconfigure(ctx, []string{inline(doc("b"))}, repo.Compiler, nil); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	want := [][2]string{{"a", "a,b"}, {"a,b", "b"}}
	if fmt.Sprint(swaps) != fmt.Sprint(want) {
		t.Errorf("OnSwap saw %v, want %v", swaps, want)
	}
}
