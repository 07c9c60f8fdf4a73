package handlertest_test

import (
	"testing"

	"github.com/portcullis-proxy/portcullis/rules"
	"github.com/portcullis-proxy/portcullis/testsupport/handlertest"
)

// A rule takes its defaults where a field is zero, and a handler's config
// is written beside its name.
func TestRuleYAML(t *testing.T) {
	cases := []struct {
		rule handlertest.Rule
		want string
	}{
		{handlertest.Rule{ID: "a", URL: "http://x/<.*>"}, `- id: a
  match: {url: "http://x/<.*>", methods: [GET]}
  authenticators: [{handler: anonymous}]
  authorizer: {handler: allow}
  mutators: [{handler: noop}]
`},
		{handlertest.Rule{ID: "b", URL: "http://x/b", Methods: []string{"GET", "POST"}, Authenticators: []string{"noop", "anonymous"},
			Authorizer: "deny", Mutators: []string{"header: {headers: {X-Rule: b}}"}, Upstream: "UPSTREAM", More: []string{"errors: [{handler: json}]"}}, `- id: b
  match: {url: "http://x/b", methods: [GET, POST]}
  authenticators: [{handler: noop}, {handler: anonymous}]
  authorizer: {handler: deny}
  mutators: [{handler: header, config: {headers: {X-Rule: b}}}]
  upstream: {url: "UPSTREAM"}
  errors: [{handler: json}]
`},
	}
	for _, tc := range cases {
		if got := tc.rule.YAML(); got != tc.want {
			t.Errorf("%s: YAML() =\n%s\nwant\n%s", tc.rule.ID, got, tc.want)
		}
	}
}

// What Rules writes, the rules parser reads back as the same rules.
func TestRulesParse(t *testing.T) {
	doc := handlertest.Rules(
		handlertest.Rule{ID: "a", URL: `http://x/<[a-z\.]+>`, Upstream: "http://up.test"},
		handlertest.Rule{ID: "b", URL: "http://x/b", Authorizer: "deny", Mutators: []string{"header: {headers: {X-Rule: b}}"}},
	)
	rs, err := rules.Parse("rules.yml", []byte(doc))
	if err != nil {
		t.Fatalf("%v in\n%s", err, doc)
	}
	if len(rs) != 2 {
		t.Fatalf("%d rules, want 2", len(rs))
	}
	a, b := rs[0].Rule, rs[1].Rule
	if a.ID != "a" || a.Match.URL != `http://x/<[a-z\.]+>` || a.Upstream.URL != "http://up.test" || a.Authorizer.Handler != "allow" {
		t.Errorf("rule a = %+v", a)
	}
	if b.ID != "b" || b.Authorizer.Handler != "deny" || len(b.Mutators) != 1 || b.Mutators[0].Handler != "header" || string(b.Mutators[0].Config) == "" {
		t.Errorf("rule b = %+v", b)
	}
	if rs[1].Line != 7 {
		t.Errorf("rule b on line %d, want 7", rs[1].Line)
	}
}
