package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/portcullis-proxy/portcullis/testsupport/handlertest"
)

// explainRules has a public rule whose mutator sets a credential-like
// header, an admin rule the deny authorizer refuses, a rule whose first
// authenticator steps aside, and two rules that overlap.
var explainRules = handlertest.Rules(
	handlertest.Rule{ID: "public", URL: "<https?>://app.example/public/<.*>",
		Mutators: []string{`header: {headers: {X-User: "{{ print .Subject }}", Authorization: "Bearer secret-for-{{ print .Subject }}"}}`}},
	handlertest.Rule{ID: "admin", URL: "https://app.example/admin<.*>", Authorizer: "deny"},
	handlertest.Rule{ID: "chain", URL: "https://app.example/chain", Authenticators: []string{"noop", "anonymous"}},
	handlertest.Rule{ID: "twin-a", URL: "https://app.example/twin"},
	handlertest.Rule{ID: "twin-b", URL: "https://app.example/<twin|other>"},
)

func TestRulesTestExplain(t *testing.T) {
	dir := writeFiles(t, map[string]string{"rules.yml": explainRules, "c.yml": testConfig, "cases.yml": `
- name: public
  request: {url: "http://app.example/public/items?token=abc&page=2", headers: {Cookie: "session=s3cr3t"}}
  expect: {status: 200}
- name: admin
  request: {url: "https://app.example/admin/users"}
  expect: {status: 403}
- name: chain
  request: {url: "https://app.example/chain"}
  expect: {status: 200}
- name: nowhere
  request: {method: POST, url: "https://app.example/public/x"}
  expect: {status: 404}
- name: twins
  request: {url: "https://app.example/twin"}
  expect: {status: 500}
`})
	out, errOut, err := run("rules", "test", "--explain", filepath.Join(dir, "cases.yml"), "-c", filepath.Join(dir, "c.yml"))
	if err != nil {
		t.Fatalf("rules test --explain failed: %v\n%s%s", err, out, errOut)
	}
	want := `ok    public
      explain GET http://app.example/public/items (query parameters: page, token)
        rule     public
        1. authenticator anonymous            accepted: subject "guest"
        2. authorizer    allow                allowed
        3. mutator       header               ok: sets Authorization: [redacted, 23 bytes]; X-User: guest
        decision allowed, status 200, subject "guest"
        header   Authorization: [redacted, 23 bytes]
        header   X-User: guest
ok    admin
      explain GET https://app.example/admin/users
        rule     admin
        1. authenticator anonymous            accepted: subject "guest"
        2. authorizer    deny                 denied: Access is forbidden
        decision denied, status 403, subject "guest": Access is forbidden
ok    chain
      explain GET https://app.example/chain
        rule     chain
        1. authenticator noop                 accepted: subject ""
        2. authorizer    allow                allowed
        3. mutator       noop                 ok: sets X-Forwarded-Host: app.example; X-Forwarded-Method: GET; X-Forwarded-Proto: https; X-Forwarded-Uri: /chain
        decision allowed, status 200
        header   X-Forwarded-Host: app.example
        header   X-Forwarded-Method: GET
        header   X-Forwarded-Proto: https
        header   X-Forwarded-Uri: /chain
ok    nowhere
      explain POST https://app.example/public/x
        rule     none matched:
          public           method POST is not in match.methods [GET]
          admin            match.url does not match https://app.example/public/x
          chain            match.url does not match https://app.example/public/x
          twin-a           match.url does not match https://app.example/public/x
          twin-b           match.url does not match https://app.example/public/x
        decision denied, status 404: Requested url does not match any rules: POST https://app.example/public/x
ok    twins
      explain GET https://app.example/twin
        rule     2 rules matched (exactly one must):
          public           match.url does not match https://app.example/twin
          admin            match.url does not match https://app.example/twin
          chain            match.url does not match https://app.example/twin
          twin-a           matches
          twin-b           matches
        decision error, status 500: Expected exactly one rule but found multiple rules
5 of 5 cases passed
`
	if out != want {
		t.Errorf("output:\n%s\nwant:\n%s", out, want)
	}
	for _, secret := range []string{"secret-for-guest", "s3cr3t", "abc"} {
		if strings.Contains(out, secret) {
			t.Errorf("the explanation shows the credential %q", secret)
		}
	}
}
