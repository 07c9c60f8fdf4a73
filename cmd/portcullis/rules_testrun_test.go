package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/portcullis-proxy/portcullis/testsupport/handlertest"
)

// testRules is an access-rules file with an anonymous rule whose header
// mutator names the subject, a denied rule and a rule with a verbose JSON
// error handler for one client network.
var testRules = handlertest.Rules(
	handlertest.Rule{ID: "public", URL: "<https?>://app.example/public/<.*>", Methods: []string{"GET", "POST"},
		Mutators: []string{`header: {headers: {X-User: "{{ print .Subject }}", X-Item: "{{ printIndex .MatchContext.RegexpCaptureGroups 1 }}"}}`}},
	handlertest.Rule{ID: "admin", URL: "https://app.example/admin<.*>", Authorizer: "deny",
		More: []string{"errors: [{handler: json, config: {verbose: true, when: [{request: {cidr: [10.0.0.0/8]}}]}}]"}},
)

// testConfig enables the handlers testRules and explainRules name.
const testConfig = `access_rules:
  repositories: [file://RULES]
authenticators:
  anonymous: {enabled: true, config: {subject: guest}}
  noop: {enabled: true}
authorizers:
  allow: {enabled: true}
  deny: {enabled: true}
mutators:
  noop: {enabled: true}
  header: {enabled: true}
`

// writeFiles writes name → content into a temp dir, replacing RULES in
// contents with the path of rules.yml there.
func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		content = strings.ReplaceAll(content, "RULES", filepath.Join(dir, "rules.yml"))
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestRulesTestPasses(t *testing.T) {
	dir := writeFiles(t, map[string]string{"rules.yml": testRules, "c.yml": testConfig, "cases.yml": `
- name: a guest reads a public item
  request: {url: "http://app.example/public/items/7?x=1"}
  expect:
    status: 200
    rule: public
    subject: guest
    headers: {X-User: guest, X-Item: items/7, X-Debug: null}
- request: {method: post, url: "https://app.example/public/form", body: "a=b"}
  expect: {status: 200, rule: public}
- name: credentials make anonymous step aside
  request:
    url: "http://app.example/public/x"
    headers: {Authorization: "Bearer abc"}
  expect: {status: 401, rule: public, body_contains: "Access credentials are invalid"}
- name: the admin area is denied
  request: {url: "https://app.example/admin/users"}
  expect: {status: 403, rule: admin, subject: guest}
- name: nothing matches plain http admin
  request: {url: "http://app.example/admin"}
  expect: {status: 404, rule: ""}
- name: internal clients get the verbose error
  request: {url: "https://app.example/admin", remote_addr: 10.1.2.3, headers: {Authorization: "Basic eDp5"}}
  expect: {status: 401, body_contains: '"reason":"no authenticator was responsible for the request"'}
- name: others do not
  request: {url: "https://app.example/admin", remote_addr: 198.51.100.1, headers: {Authorization: "Basic eDp5"}}
  expect: {status: 401, body_contains: '"message":"Access credentials are invalid"}'}
`})
	// Rules from the configuration's repositories.
	out, errOut, err := run("rules", "test", filepath.Join(dir, "cases.yml"), "-c", filepath.Join(dir, "c.yml"))
	if err != nil {
		t.Fatalf("rules test failed: %v\n%s%s", err, out, errOut)
	}
	for _, want := range []string{"ok    a guest reads a public item\n", "ok    POST https://app.example/public/form\n", "7 of 7 cases passed\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	// Rules given on the command line.
	out, _, err = run("rules", "test", filepath.Join(dir, "cases.yml"), "-c", filepath.Join(dir, "c.yml"), filepath.Join(dir, "rules.yml"))
	if err != nil || !strings.Contains(out, "7 of 7 cases passed") {
		t.Errorf("with RULES: %v\n%s", err, out)
	}
}

func TestRulesTestReportsEachDifference(t *testing.T) {
	dir := writeFiles(t, map[string]string{"rules.yml": testRules, "c.yml": testConfig, "cases.yml": `- name: right
  request: {url: "http://app.example/public/a"}
  expect: {status: 200}
- name: wrong
  request: {url: "http://app.example/public/a"}
  expect:
    status: 403
    rule: admin
    subject: bob
    headers: {X-User: bob, X-Item: null, X-Missing: here}
    body_contains: nope
`})
	out, _, err := run("rules", "test", filepath.Join(dir, "cases.yml"), "-c", filepath.Join(dir, "c.yml"))
	if err == nil || err.Error() != "1 of 2 cases failed" {
		t.Errorf("err = %v, want 1 of 2 cases failed", err)
	}
	want := "ok    right\n" +
		"FAIL  wrong (" + filepath.Join(dir, "cases.yml") + ":4)\n" +
		"      GET http://app.example/public/a\n" +
		"      status:  got 200, want 403\n" +
		"      rule:    got \"public\", want \"admin\"\n" +
		"      subject: got \"guest\", want \"bob\"\n" +
		"      header X-Item: got \"a\", want it absent\n" +
		"      header X-Missing: absent, want \"here\"\n" +
		"      header X-User: got \"guest\", want \"bob\"\n" +
		"      body:    does not contain \"nope\"\n" +
		"1 of 2 cases passed\n"
	if out != want {
		t.Errorf("output:\n%s\nwant:\n%s", out, want)
	}
}

func TestRulesTestRejectsBadInput(t *testing.T) {
	dir := writeFiles(t, map[string]string{"rules.yml": testRules, "c.yml": testConfig,
		"unknown.yml":  "- request: {url: \"http://x/\"}\n  expect: {status: 200, statuss: 1}\n",
		"empty.yml":    "- name: checks nothing\n  request: {url: \"http://x/\"}\n  expect: {}\n",
		"nourl.yml":    "- request: {url: \"/relative\"}\n  expect: {status: 200}\n",
		"none.yml":     "[]\n",
		"ok.yml":       "- request: {url: \"http://x/\"}\n  expect: {status: 200}\n",
		"badrules.yml": handlertest.Rule{ID: "x", URL: "http://x/<(>"}.YAML(),
	})
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"unknown.yml", "rules.yml"}, `unknown.yml:2:25: case 1: unknown key "statuss" in expect (known: body_contains, headers, rule, status, subject)`},
		{[]string{"empty.yml", "rules.yml"}, `empty.yml:1: case "checks nothing": expect checks nothing`},
		{[]string{"nourl.yml", "rules.yml"}, `request.url: "/relative" is not an absolute http(s) URL`},
		{[]string{"none.yml", "rules.yml"}, "none.yml: no cases"},
		{[]string{"ok.yml"}, "no rules: give RULES files or a configuration"},
	}
	for _, tc := range cases {
		args := []string{"rules", "test"}
		for _, a := range tc.args {
			args = append(args, filepath.Join(dir, a))
		}
		_, errOut, err := run(args...)
		if err == nil {
			t.Errorf("%v: exit status 0", tc.args)
		}
		if !strings.Contains(errOut+errString(err), tc.want) {
			t.Errorf("%v: stderr %q, err %v; want %q", tc.args, errOut, err, tc.want)
		}
	}
	// A rules file that does not load is reported as validate does.
	_, errOut, err := run("rules", "test", filepath.Join(dir, "ok.yml"), filepath.Join(dir, "badrules.yml"))
	if err == nil || !strings.Contains(errOut, filepath.Join(dir, "badrules.yml")+":2: rule \"x\": match.url") {
		t.Errorf("bad rules: %q, %v", errOut, err)
	}
}

// Every problem of a cases file is reported at once, each with its line:
// unknown keys at any level, wrong types, incomplete cases, syntax.
func TestRulesTestReportsEveryCaseProblem(t *testing.T) {
	dir := writeFiles(t, map[string]string{"rules.yml": testRules,
		"cases.yml": "- name: one\n  request: {url: \"http://x/\", methd: POST}\n  expect: {statuss: 200}\n" +
			"- name: two\n  request: {url: \"http://x/\"}\n  expect: {status: many}\n" +
			"- name: three\n  requests: {url: \"http://x/\"}\n  expect: {status: 200}\n" +
			"- name: four\n  request: {url: \"http://x/\"}\n  expect: {status: 200}\n",
		"syntax.yml": "- name: one\n  request: {url: \"http://x/\"\n  expect: {status: 200}\n",
	})
	_, errOut, err := run("rules", "test", filepath.Join(dir, "cases.yml"), filepath.Join(dir, "rules.yml"))
	f := filepath.Join(dir, "cases.yml")
	for _, want := range []string{
		f + `:2:31: case "one": unknown key "methd" in request (known: body, headers, method, remote_addr, url)`,
		f + `:3:12: case "one": unknown key "statuss" in expect`,
		f + `:6: case "two": cannot unmarshal !!str ` + "`many`" + ` into int`,
		f + `:8:3: case "three": unknown key "requests" in the case (known: expect, name, request)`,
	} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut)
		}
	}
	if err == nil || strings.Contains(errOut, "four") {
		t.Errorf("err %v; a good case is not an error: %s", err, errOut)
	}
	_, errOut, _ = run("rules", "test", filepath.Join(dir, "syntax.yml"), filepath.Join(dir, "rules.yml"))
	if want := filepath.Join(dir, "syntax.yml") + ":3:3: syntax error: "; !strings.HasPrefix(errOut, want) {
		t.Errorf("syntax: %q, want prefix %q", errOut, want)
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// TestRulesTestDocumentedExample runs the cases of docs/access-rules.md
// against contrib/example's files, as the page says they pass.
func TestRulesTestDocumentedExample(t *testing.T) {
	doc, err := os.ReadFile("../../docs/access-rules.md")
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(doc), "<!-- check: cases -->")
	if !ok {
		t.Fatal("docs/access-rules.md has no cases example")
	}
	_, block, _ := strings.Cut(after, "```yaml\n")
	block, _, _ = strings.Cut(block, "```")
	cases := filepath.Join(t.TempDir(), "cases.yml")
	os.WriteFile(cases, []byte(block), 0o600)
	out, errOut, err := run("rules", "test", cases, "-c", "../../contrib/example/oathkeeper.yml", "../../contrib/example/access-rules.yml")
	if err != nil || !strings.Contains(out, "2 of 2 cases passed") {
		t.Errorf("documented cases: %v\n%s%s", err, out, errOut)
	}
}
