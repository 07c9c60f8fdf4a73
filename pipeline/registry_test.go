package pipeline

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
)

func TestKindNames(t *testing.T) {
	cases := []struct {
		k                                    Kind
		noun, configKey, ruleKey, schemaName string
	}{
		{KindAuthenticator, "authenticator", "authenticators", "authenticators", "authenticator"},
		{KindAuthorizer, "authorizer", "authorizers", "authorizer", "authorizer"},
		{KindMutator, "mutator", "mutators", "mutators", "mutator"},
		{KindErrorHandler, "error handler", "errors.handlers", "errors", "errorHandler"},
	}
	if got := Kinds(); len(got) != len(cases) {
		t.Fatalf("Kinds() = %v, want %d kinds", got, len(cases))
	}
	for i, tc := range cases {
		if k := Kinds()[i]; k != tc.k {
			t.Errorf("Kinds()[%d] = %v, want %v", i, k, tc.k)
		}
		if got := [4]string{tc.k.String(), tc.k.ConfigKey(), tc.k.RuleKey(), tc.k.SchemaName()}; got != [4]string{tc.noun, tc.configKey, tc.ruleKey, tc.schemaName} {
			t.Errorf("kind %d names = %q, want %q", tc.k, got, [4]string{tc.noun, tc.configKey, tc.ruleKey, tc.schemaName})
		}
	}
}

type allowAll struct{ name string }

func (allowAll) Authorize(*http.Request, *Session) error { return nil }

type passThrough struct{}

func (passThrough) Mutate(*http.Request, *Session) error { return nil }

func newAllow(c *testConfig, _ Deps) (Authorizer, error) { return allowAll{name: c.Name}, nil }

func TestCatalogFromEntries(t *testing.T) {
	cat, err := NewCatalog([]Handler{
		Typed("zeta", newAllow),
		Typed("alpha", newAllow),
		Typed("alpha", func(*struct{}, Deps) (Mutator, error) { return passThrough{}, nil }),
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := cat.Names(KindAuthorizer); !reflect.DeepEqual(got, []string{"alpha", "zeta"}) {
		t.Errorf("Names(authorizer) = %v, want [alpha zeta]", got)
	}
	if got := cat.Names(KindMutator); !reflect.DeepEqual(got, []string{"alpha"}) {
		t.Errorf("Names(mutator) = %v, want [alpha]", got)
	}
	if len(cat.Names(KindAuthenticator)) != 0 || cat.Known(KindAuthenticator, "alpha") {
		t.Error("an authorizer's name is known as an authenticator")
	}
	hs := cat.Handlers()
	if len(hs) != 3 || hs[0].Name() != "zeta" || hs[2].Kind() != KindMutator || hs[0].Config() != reflect.TypeFor[testConfig]() {
		t.Errorf("Handlers() = %+v", hs)
	}

	if err := cat.Enable(KindAuthorizer, "beta", nil, Deps{}); err == nil || err.Error() != `unknown authorizer "beta" (known: [alpha zeta])` {
		t.Errorf("Enable(unknown) = %v", err)
	}
	if _, err := cat.Authorizers.Build("zeta", nil); err == nil || err.Error() != `authorizer "zeta" is not enabled` {
		t.Errorf("Build(not enabled) = %v", err)
	}
	if err := cat.Enable(KindAuthorizer, "zeta", json.RawMessage(`{"name":"global"}`), Deps{}); err != nil {
		t.Fatal(err)
	}
	if !cat.Enabled(KindAuthorizer, "zeta") || cat.Enabled(KindAuthorizer, "alpha") {
		t.Error("Enabled does not follow Enable")
	}
	a, err := cat.Authorizers.Build("zeta", json.RawMessage(`{"enabled":true}`))
	if err != nil || a.(allowAll).name != "global" {
		t.Errorf("Build merged over the global config = %v, %v", a, err)
	}
	_, err = cat.Authorizers.Build("zeta", json.RawMessage(`{"name":""}`))
	var he *HandlerError
	if !errors.As(err, &he) || he.Kind != KindAuthorizer || he.Name != "zeta" || !strings.Contains(err.Error(), `authorizer "zeta": key "name": must not be empty`) {
		t.Errorf("Build(invalid) = %v", err)
	}
	if err := cat.EnableAll(Deps{}); err != nil {
		t.Fatal(err)
	}
	if !cat.Enabled(KindAuthorizer, "alpha") || !cat.Enabled(KindMutator, "alpha") {
		t.Error("EnableAll left a handler disabled")
	}
}

func TestCatalogRefusesBadEntries(t *testing.T) {
	cases := []struct {
		name    string
		entries []Handler
		want    string
	}{
		{"twice", []Handler{Typed("x", newAllow), Typed("x", newAllow)}, `authorizer "x" is listed twice`},
		{"not a stage", []Handler{Typed("x", func(*testConfig, Deps) (string, error) { return "", nil })}, `handler "x": string is not a stage interface`},
		{"zero entry", []Handler{{}}, "not made by pipeline.Typed or pipeline.Shared"},
	}
	for _, tc := range cases {
		if _, err := NewCatalog(tc.entries); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: NewCatalog = %v, want %q", tc.name, err, tc.want)
		}
	}
}

// sharedStore is a RuleBuilder that serves an endpoint, as id_token does.
type sharedStore struct{ global *testConfig }

func (s *sharedStore) Build(c *testConfig) (Authorizer, error) {
	return allowAll{name: s.global.Name + "/" + c.Name}, nil
}

func (s *sharedStore) APIRoutes() map[string]http.Handler {
	return map[string]http.Handler{"/shared": http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusTeapot) })}
}

// A Shared handler's global config is decoded strictly over the defaults
// but not validated (rules may supply required keys); each rule's merged
// config is validated.
func TestSharedEntry(t *testing.T) {
	setup := func(g *testConfig, _ Deps) (RuleBuilder[testConfig, Authorizer], error) {
		return &sharedStore{global: g}, nil
	}
	cat, err := NewCatalog([]Handler{Shared("store", setup)})
	if err != nil {
		t.Fatal(err)
	}
	if err := cat.Enable(KindAuthorizer, "store", json.RawMessage(`{"nmae":"x"}`), Deps{}); err == nil || !strings.Contains(err.Error(), `unknown field "nmae"`) {
		t.Errorf("unknown global key: %v", err)
	}
	if err := cat.Enable(KindAuthorizer, "store", json.RawMessage(`{"name":""}`), Deps{}); err != nil {
		t.Fatalf("a global config that leaves a required key to the rules: %v", err)
	}
	if _, err := cat.Authorizers.Build("store", nil); err == nil || !strings.Contains(err.Error(), `key "name": must not be empty`) {
		t.Errorf("rule without the required key: %v", err)
	}
	a, err := cat.Authorizers.Build("store", json.RawMessage(`{"name":"rule"}`))
	if err != nil || a.(allowAll).name != "/rule" {
		t.Errorf("Build = %v, %v", a, err)
	}
	g, err := GlobalConfig[testConfig](nil)
	if err != nil || g.Name != "default" {
		t.Errorf("GlobalConfig(nil) = %+v, %v: want the defaults", g, err)
	}
	h, ok := cat.APIRoutes()["/shared"]
	if !ok {
		t.Fatal("the rule builder's endpoint is not among the catalog's API routes")
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/shared", nil))
	if rec.Code != http.StatusTeapot {
		t.Errorf("GET /shared = %d", rec.Code)
	}
}

func TestHandlerErrorConfigSection(t *testing.T) {
	for k, want := range map[Kind]string{
		KindAuthenticator: "authenticators.x.config",
		KindErrorHandler:  "errors.handlers.x.config",
	} {
		if got := (&HandlerError{Kind: k, Name: "x"}).ConfigSection(); got != want {
			t.Errorf("ConfigSection(%v) = %q, want %q", k, got, want)
		}
	}
}

type answerAll struct{}

func (answerAll) HandleError(w http.ResponseWriter, _ *http.Request, _ error) {
	w.WriteHeader(http.StatusTeapot)
}

// An error handler's factory and config struct never see the `when` key
// of its global config: the catalog holds it for the rule compiler.
func TestErrorHandlerGlobalWhenIsHeldBack(t *testing.T) {
	cat, err := NewCatalog([]Handler{
		Typed("plain", func(*struct{}, Deps) (ErrorHandler, error) { return answerAll{}, nil }),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := cat.Enable(KindErrorHandler, "plain", json.RawMessage(`{"when":[{"error":["forbidden"]}]}`), Deps{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cat.ErrorHandlers.Build("plain", nil); err != nil {
		t.Errorf("the handler saw its global when: %v", err)
	}
	if got := string(cat.ErrorHandlers.GlobalWhen("plain")); got != `[{"error":["forbidden"]}]` {
		t.Errorf("GlobalWhen = %s", got)
	}
	if err := cat.Enable(KindErrorHandler, "plain", nil, Deps{}); err != nil {
		t.Fatal(err)
	}
	if got := cat.ErrorHandlers.GlobalWhen("plain"); got != nil {
		t.Errorf("GlobalWhen after enabling without one = %s", got)
	}
}

func TestCutKey(t *testing.T) {
	cases := []struct {
		raw, rest, value string
		present          bool
	}{
		{`{"a":1,"when":[1]}`, `{"a":1}`, `[1]`, true},
		{`{"when":null}`, `{}`, `null`, true},
		{`{"a":1}`, `{"a":1}`, ``, false},
		{``, ``, ``, false},
		{`null`, `null`, ``, false},
		{`[1]`, `[1]`, ``, false},
	}
	for _, tc := range cases {
		rest, value, present, err := CutKey(json.RawMessage(tc.raw), "when")
		if err != nil || string(rest) != tc.rest || string(value) != tc.value || present != tc.present {
			t.Errorf("CutKey(%s) = %s, %s, %v, %v; want %s, %s, %v", tc.raw, rest, value, present, err, tc.rest, tc.value, tc.present)
		}
	}
	if _, _, _, err := CutKey(json.RawMessage(`{"when":`), "when"); err == nil {
		t.Error("CutKey of broken JSON: no error")
	}
}
