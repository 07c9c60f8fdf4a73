package docsyntax_test

import (
	"errors"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/portcullis-proxy/portcullis/internal/docsyntax"
)

func TestLocate(t *testing.T) {
	cases := []struct {
		file, doc, want string
	}{
		// An unclosed flow mapping: yaml.v3 names the line the flow began
		// on; the error is where the parser gave up.
		{"rules.yml", "- id: a\n  match: {url: \"http://x/\", methods: [GET]\n  authenticators: [{handler: noop}]\n", "rules.yml:3:3: syntax error: ',' or '}' must be specified"},
		{"rules.yml", "- id: a\n  match: [\n", "rules.yml:2:10: syntax error: sequence end token ']' not found"},
		{"c.yaml", "serve:\n  proxy:\n    port: 1\n   host: x\n", "c.yaml:4:"},
		{"rules.yml", "- id: a\x01\n", "rules.yml:1:8: syntax error: control characters are not allowed"},
		{"rules.json", "[{\"id\": \"a\",\n \"match\": }]", "rules.json:2:11: syntax error: invalid character '}' looking for beginning of value"},
		{"rules.json", "[{\"id\": \"a\"}", "rules.json:1:12: syntax error: unexpected end of JSON input"},
	}
	for _, tc := range cases {
		var n yaml.Node
		yerr := yaml.Unmarshal([]byte(tc.doc), &n)
		var got error
		if docsyntax.IsJSON(tc.file) {
			if e := docsyntax.CheckJSON(tc.file, []byte(tc.doc)); e != nil {
				got = e
			}
		}
		if got == nil {
			if yerr == nil {
				t.Errorf("%q: yaml.v3 accepted it", tc.doc)
				continue
			}
			got = docsyntax.Locate(tc.file, []byte(tc.doc), yerr)
		}
		var se *docsyntax.Error
		if !errors.As(got, &se) || len(got.Error()) < len(tc.want) || got.Error()[:len(tc.want)] != tc.want {
			t.Errorf("%q:\n got %v\nwant prefix %s", tc.doc, got, tc.want)
		}
	}
	if e := docsyntax.CheckJSON("ok.json", []byte(`[{"id": 1}]`)); e != nil {
		t.Errorf("well-formed JSON: %v", e)
	}
}
