package rules_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/portcullis-proxy/portcullis/pipeline"
	"github.com/portcullis-proxy/portcullis/rules"
)

func TestParseOathkeeperFixtures(t *testing.T) {
	for _, file := range []string{"testdata/oathkeeper-rules.yaml", "testdata/oathkeeper-rules.json"} {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		rs, err := rules.Parse(file, data)
		if err != nil {
			t.Fatalf("Parse(%s): %v", file, err)
		}
		if len(rs) == 0 {
			t.Fatalf("Parse(%s): no rules", file)
		}
		if _, err := compiler(t, rules.Regexp).Compile(rs); err != nil {
			t.Fatalf("Compile(%s): %v", file, err)
		}
	}
	data, _ := os.ReadFile("testdata/oathkeeper-rules.yaml")
	rs, _ := rules.Parse("f.yaml", data)
	r := rs[0]
	if r.ID != "some-id" || r.Version != "v0.40.9" || r.Description == "" || !r.Upstream.PreserveHost ||
		r.Upstream.StripPath != "/api" || r.Upstream.URL != "http://my-backend-service" ||
		len(r.Match.Methods) != 2 || r.Authorizer.Handler != "allow" || len(r.Errors) != 1 {
		t.Errorf("rule fields not all read: %+v", r.Rule)
	}
	if r.Line != 2 {
		t.Errorf("rule line = %d, want 2", r.Line)
	}
	if rs[1].Line != 35 {
		t.Errorf("second rule line = %d, want 35", rs[1].Line)
	}
}

func TestParseErrorsCarryFileAndLine(t *testing.T) {
	cases := []struct {
		name, doc, want string
	}{
		{"bad yaml", "- id: a\n  match: [\n", "f.yml:2:10: syntax error: sequence end token ']' not found"},
		{"not a list", "id: a\n", "f.yml:1: expected a list of rules"},
		{"unknown key", "- id: a\n  match:\n    url: http://x/\n    methods: [GET]\n  upstraem:\n    url: http://y\n", "f.yml:5: json: unknown field \"upstraem\""},
		{"wrong type", "- id: a\n  match:\n    url: http://x/\n    methods: GET\n", "f.yml:4: key \"match.methods\""},
		{"rule not a mapping", "- just a string\n", "f.yml:1: expected a rule"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := rules.Parse("f.yml", []byte(tc.doc))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Parse() error = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestParseEmptyDocumentIsNoRules(t *testing.T) {
	for _, doc := range []string{"", "  \n", "[]", "# only a comment\n", "null"} {
		rs, err := rules.Parse("f", []byte(doc))
		if err != nil || len(rs) != 0 {
			t.Errorf("Parse(%q) = %d rules, %v; want 0, nil", doc, len(rs), err)
		}
	}
}

func TestCompileErrors(t *testing.T) {
	base := func(extra string) string {
		return "- id: r1\n  match:\n    url: http://x/<.*>\n    methods: [GET]\n  authenticators:\n    - handler: noop\n  authorizer:\n    handler: allow\n  mutators:\n    - handler: noop\n" + extra
	}
	cases := []struct {
		name     string
		doc      string
		disabled []string
		want     string
		// lenient problems are Oathkeeper's to tolerate: serving loads
		// the rule with the problem as a warning and answers 500 on it;
		// only the strict compiler (rules validate) refuses it.
		lenient bool
	}{
		{"unknown authenticator", strings.Replace(base(""), "handler: noop\n  authorizer", "handler: kerberos\n  authorizer", 1), nil, `f.yml:6: rule "r1": authenticators[0]: unknown authenticator "kerberos"`, true},
		{"disabled authenticator", base(""), []string{"noop"}, `authenticator "noop" is not enabled`, true},
		{"duplicate id", base("") + strings.TrimPrefix(base(""), ""), nil, `f.yml:11: duplicate rule id "r1" (first defined at f.yml:1)`, false},
		{"bad template", base("") + "- id: r2\n  match:\n    url: http://x/y\n    methods: [POST]\n  authenticators: [{handler: noop}]\n  authorizer: {handler: allow}\n  mutators:\n    - handler: header\n      config:\n        headers:\n          X-User: \"{{ .Subject \"\n", nil, `f.yml:18: rule "r2": mutators[0]: mutator "header": template headers.X-User`, true},
		{"unknown handler config key", strings.Replace(base(""), "handler: allow", "handler: allow\n    config: {foo: 1}", 1), nil, `unknown field "foo"`, true},
		{"bad regexp", strings.Replace(base(""), "<.*>", "<(>", 1), nil, "f.yml:3: rule \"r1\": match.url: invalid regular expression", false},
		{"unbalanced", strings.Replace(base(""), "<.*>", "<.*", 1), nil, "unbalanced < >", false},
		{"lower-case method", strings.Replace(base(""), "[GET]", "[get]", 1), nil, `"get" is not an HTTP method`, true},
		{"no mutators", strings.Replace(base(""), "  mutators:\n    - handler: noop\n", "", 1), nil, "no mutators", true},
		{"bad upstream", base("  upstream:\n    url: ftp://x\n"), nil, "f.yml:12: rule \"r1\": upstream.url: scheme must be", false},
		{"bad websocket", base("  websocket:\n    allowed_origins: [\"not an origin\"]\n"), nil, "is not an origin", false},
		{"missing id", strings.Replace(base(""), "id: r1", "description: x", 1), nil, "f.yml:1: rule has no id", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			strict := compiler(t, rules.Regexp, tc.disabled...)
			strict.Strict = true
			_, err := compile(t, strict, "f.yml", tc.doc)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("strict: error = %v\nwant it to contain %q", err, tc.want)
			}
			set, err := compile(t, compiler(t, rules.Regexp, tc.disabled...), "f.yml", tc.doc)
			if !tc.lenient {
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Errorf("error = %v\nwant it to contain %q", err, tc.want)
				}
				return
			}
			if err != nil {
				t.Fatalf("lenient: error = %v, want the rules loaded with a warning", err)
			}
			var warned bool
			for _, w := range set.Warnings() {
				warned = warned || strings.Contains(w.Error(), tc.want)
			}
			if !warned {
				t.Errorf("warnings = %v\nwant one containing %q", set.Warnings(), tc.want)
			}
		})
	}
}

func TestLoadFilesDirectoryAndInline(t *testing.T) {
	c := compiler(t, rules.Regexp)
	set, err := rules.LoadFiles(context.Background(), c, []string{"file://testdata"})
	if err != nil {
		t.Fatal(err)
	}
	if set.Len() != 3 {
		t.Errorf("directory: %d rules, want 3", set.Len())
	}
	// inline:// is base64 of the document.
	set, err = rules.LoadFiles(context.Background(), c, []string{"inline://W3siaWQiOiJpIiwibWF0Y2giOnsidXJsIjoiaHR0cDovL3gveSIsIm1ldGhvZHMiOlsiR0VUIl19LCJhdXRoZW50aWNhdG9ycyI6W3siaGFuZGxlciI6Im5vb3AifV0sImF1dGhvcml6ZXIiOnsiaGFuZGxlciI6ImFsbG93In0sIm11dGF0b3JzIjpbeyJoYW5kbGVyIjoibm9vcCJ9XX1d"})
	if err != nil || set.Len() != 1 {
		t.Fatalf("inline: %v, %v", set, err)
	}
	if _, err := rules.LoadFiles(context.Background(), c, []string{"file://testdata/missing.yml"}); err == nil {
		t.Error("missing file loaded without error")
	}
}

// TestLenientRulesFailClosed: a rule loaded despite a problem (here no
// authorizer, and a disabled mutator) answers every request it matches
// with a 500, as Oathkeeper does; it never lets one through.
func TestLenientRulesFailClosed(t *testing.T) {
	doc := "- id: r1\n  match:\n    url: http://x/a\n    methods: [GET]\n  authenticators: [{handler: anonymous}]\n  mutators: [{handler: noop}]\n" +
		"- id: r2\n  match:\n    url: http://x/b\n    methods: [GET]\n  authenticators: [{handler: anonymous}]\n  authorizer: {handler: allow}\n  mutators: [{handler: header}]\n" +
		"- id: r3\n  match:\n    url: http://x/c\n    methods: [GET]\n  authenticators: [{handler: anonymous}]\n  authorizer: {handler: allow}\n"
	set, err := compile(t, compiler(t, rules.Regexp, "header"), "f.yml", doc)
	if err != nil {
		t.Fatal(err)
	}
	if len(set.Warnings()) != 3 {
		t.Errorf("warnings = %v, want three", set.Warnings())
	}
	for _, p := range []string{"/a", "/b", "/c"} {
		u, _ := url.Parse("http://x" + p)
		rule, groups, err := set.Match(http.MethodGet, u)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		r := httptest.NewRequest(http.MethodGet, u.String(), nil)
		if err := rule.Run(r, pipeline.NewSession(r, u, groups)); pipeline.StatusOf(err) != http.StatusInternalServerError {
			t.Errorf("%s: Run = %v, want a 500", p, err)
		}
	}
}

// TestParseErrorsNameTheKey: a key that is unknown or does not decode is a
// *rules.PosError holding a typed error with the key's path, at the line
// that key is written on — found with errors.As, not read from a message.
func TestParseErrorsNameTheKey(t *testing.T) {
	cases := []struct {
		name, doc string
		path      []string
		line      int
	}{
		{"unknown top-level key", "- id: a\n  upstraem:\n    url: http://y\n", []string{"upstraem"}, 2},
		{"unknown nested key", "- id: a\n  match:\n    url: http://x/\n    methds: [GET]\n", []string{"match", "methds"}, 4},
		{"unknown key in a list item", "- id: a\n  authenticators:\n    - handler: noop\n    - handler: anonymous\n      confg: {}\n", []string{"authenticators", "1", "confg"}, 5},
		{"wrong type in a list item", "- id: a\n  mutators:\n    - handler: noop\n    -\n      handler: [x]\n", []string{"mutators", "1", "handler"}, 5},
		{"bad duration", "- id: a\n  websocket:\n    bind_to_session: true\n    max_lifetime: soon\n", []string{"websocket", "max_lifetime"}, 4},
		{"second rule", "- id: a\n- id: b\n  match: 3\n", []string{"match"}, 3},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := rules.Parse("f.yml", []byte(tc.doc))
			var pe *rules.PosError
			if !errors.As(err, &pe) {
				t.Fatalf("error = %v, want a *rules.PosError", err)
			}
			path, ok := pipeline.KeyPath(pe)
			if !ok || !reflect.DeepEqual(path, tc.path) || pe.Line != tc.line {
				t.Errorf("error %v: path %q (%v), line %d; want %q, line %d", err, path, ok, pe.Line, tc.path, tc.line)
			}
		})
	}
}

// TestCompileWebSocketErrorsNameTheKey: a websocket value that does not
// validate is reported at its own line, named from the rule.
func TestCompileWebSocketErrorsNameTheKey(t *testing.T) {
	doc := "- id: r1\n  match:\n    url: http://x/\n    methods: [GET]\n  authenticators: [{handler: noop}]\n  authorizer: {handler: allow}\n  mutators: [{handler: noop}]\n  websocket:\n    max_lifetime: 1h\n    allowed_origins:\n      - https://a.example\n      - not an origin\n"
	_, err := compile(t, compiler(t, rules.Regexp), "f.yml", doc)
	want := `f.yml:12: rule "r1": websocket.allowed_origins[1]: "not an origin" is not an origin`
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("error = %v, want it to contain %q", err, want)
	}
	var pe *rules.PosError
	if !errors.As(err, &pe) || pe.Line != 12 {
		t.Errorf("errors.As found %+v, want a *rules.PosError at line 12", pe)
	}
}
