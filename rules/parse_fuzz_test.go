package rules_test

import (
	"context"
	"errors"
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/portcullis-proxy/portcullis/internal/docsyntax"
	"github.com/portcullis-proxy/portcullis/internal/registry"
	"github.com/portcullis-proxy/portcullis/pipeline"
	"github.com/portcullis-proxy/portcullis/rules"
)

// offlineCompiler enables every handler, on empty global configs, without
// an HTTP client, so that arbitrary rule documents compile without
// reaching the network or the file system: the handlers that read
// documents when built (jwt, id_token, ladon) do not enable, and those
// that call out per request fail closed.
func offlineCompiler(strategy rules.Strategy) *rules.Compiler {
	cat := registry.NewCatalog()
	_ = cat.EnableAll(pipeline.Deps{Context: context.Background()})
	return &rules.Compiler{Catalog: cat, Strategy: strategy, WebSocketDefaults: rules.DefaultWebSocketPolicy()}
}

// FuzzRules parses and compiles arbitrary rule documents with both
// matching strategies. Whatever the input: no panic; a document that fails
// is reported as file:line errors; a document that compiles has every rule
// findable by its id, and a rule whose match.url is a plain URL (no < >)
// is what that URL matches (or the match reports several rules, never
// none).
func FuzzRules(f *testing.F) {
	for _, name := range []string{"testdata/oathkeeper-rules.yaml", "testdata/oathkeeper-rules.json"} {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, false)
		f.Add(b, true)
	}
	f.Add([]byte("- id: a\n  match: {url: \"http://x/a\", methods: [GET]}\n  authenticators: [{handler: noop}]\n  authorizer: {handler: allow}\n  mutators: [{handler: noop}]\n"), false)
	f.Add([]byte("- id: a\n  match: {url: \"http://x/<**>\", methods: [GET, POST]}\n  authenticators: [{handler: anonymous, config: {subject: s}}]\n  authorizer: {handler: deny}\n  mutators: [{handler: header, config: {headers: {X: \"{{ .Subject }}\"}}}]\n  errors: [{handler: json}]\n  upstream: {url: \"ws://u/\", strip_path: /x}\n  websocket: {max_lifetime: 1m, allowed_origins: [\"https://o\"]}\n"), true)
	f.Add([]byte("[{\"id\":\"a\",\"match\":{\"url\":\"http://x/<(?i)a>\",\"methods\":[\"GET\"]},\"authenticators\":[{\"handler\":\"noop\"}],\"authorizer\":{\"handler\":\"allow\"},\"mutators\":[{\"handler\":\"noop\"}]}]"), false)
	f.Add([]byte("- id: a\n  id: b\n"), false)
	f.Add([]byte("- &a {id: x}\n- *a\n"), false)
	f.Add([]byte("- id: a\n  match: {url: \"http://x/<a)|(b>\", methods: [get]}\n"), false)
	regexpC, globC := offlineCompiler(rules.Regexp), offlineCompiler(rules.Glob)
	f.Fuzz(func(t *testing.T, doc []byte, glob bool) {
		c := regexpC
		if glob {
			c = globC
		}
		rs, err := rules.Parse("rules.yml", doc)
		if err != nil {
			checkPositioned(t, err)
			return
		}
		set, err := c.Compile(rs)
		if err != nil {
			checkPositioned(t, err)
			return
		}
		if set.Len() != len(rs) {
			t.Fatalf("%d rules parsed, %d compiled", len(rs), set.Len())
		}
		set.Overlaps()
		for _, r := range set.Rules() {
			if got, ok := set.Get(r.ID); !ok || got != r {
				t.Fatalf("rule %q is not found by its id", r.ID)
			}
			lit := r.Match.URL
			if strings.ContainsAny(lit, "<>") {
				continue
			}
			u, err := url.Parse(lit)
			if err != nil || rules.MatchURL(u) != lit || u.RawPath != "" {
				continue
			}
			for _, m := range r.Match.Methods {
				got, _, err := set.Match(m, u)
				switch {
				case errors.Is(err, rules.ErrManyRules):
				case err != nil:
					t.Fatalf("%s %s: %v, want rule %q", m, lit, err, r.ID)
				case got != r:
					t.Fatalf("%s %s matched rule %q, want %q", m, lit, got.ID, r.ID)
				}
			}
		}
	})
}

// checkPositioned checks that a rules error says where: every error is a
// *rules.PosError naming the file.
func checkPositioned(t *testing.T, err error) {
	t.Helper()
	var list rules.Errors
	errs := []error{err}
	if errors.As(err, &list) {
		errs = list
	}
	for _, e := range errs {
		var se *docsyntax.Error
		if errors.As(e, &se) {
			if se.File != "rules.yml" || se.Line < 1 {
				t.Fatalf("syntax error without a position: %v", e)
			}
			continue
		}
		var pe *rules.PosError
		if !errors.As(e, &pe) || pe.File != "rules.yml" || pe.Line < 0 {
			t.Fatalf("error without a position: %v", e)
		}
	}
}
