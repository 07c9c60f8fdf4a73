package yamlpos_test

import (
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/portcullis-proxy/portcullis/internal/yamlpos"
)

func TestLine(t *testing.T) {
	const doc = `serve:
  proxy:
    port: 1
    timeout: {read: 5s}
rules:
  - id: a
    match:
      methods: [GET,
        POST]
  -
    id: b
base: &base
  host: x
copy: *base
`
	var root yaml.Node
	if err := yaml.Unmarshal([]byte(doc), &root); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		path []string
		want int
	}{
		{nil, 1},
		{[]string{"serve"}, 1},
		{[]string{"serve", "proxy", "port"}, 3},
		{[]string{"serve", "proxy", "timeout", "read"}, 4},
		// The deepest step found: proxy has no tls.
		{[]string{"serve", "proxy", "tls", "cert"}, 2},
		{[]string{"rules", "0"}, 6},
		{[]string{"rules", "0", "match", "methods", "1"}, 9},
		{[]string{"rules", "1"}, 11},
		{[]string{"rules", "1", "id"}, 11},
		{[]string{"rules", "7"}, 5},
		{[]string{"rules", "x"}, 5},
		// An alias is looked up where its anchor is written.
		{[]string{"copy", "host"}, 13},
		{[]string{"absent"}, 0},
		{[]string{"absent", "serve"}, 0},
	}
	for _, tc := range cases {
		if got := yamlpos.Line(&root, tc.path...); got != tc.want {
			t.Errorf("Line(%q) = %d, want %d", tc.path, got, tc.want)
		}
	}
	if got := yamlpos.Line(nil, "serve"); got != 0 {
		t.Errorf("Line(nil) = %d, want 0", got)
	}
	if got := yamlpos.Line(&yaml.Node{Kind: yaml.DocumentNode}, "serve"); got != 0 {
		t.Errorf("Line(empty document) = %d, want 0", got)
	}
}
