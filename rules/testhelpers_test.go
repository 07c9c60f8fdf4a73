package rules_test

import (
	"context"
	"testing"

	"github.com/portcullis-proxy/portcullis/internal/fetch"
	"github.com/portcullis-proxy/portcullis/internal/registry"
	"github.com/portcullis-proxy/portcullis/pipeline"
	"github.com/portcullis-proxy/portcullis/rules"
)

// compiler returns a compiler with the foundation's handlers enabled on
// empty global configs, except those listed as disabled.
func compiler(t testing.TB, strategy rules.Strategy, disabled ...string) *rules.Compiler {
	t.Helper()
	cat := registry.NewCatalog()
	off := map[string]bool{}
	for _, d := range disabled {
		off[d] = true
	}
	deps := pipeline.Deps{Context: context.Background(), HTTPClient: fetch.NewClient(fetch.ClientOptions{})}
	for _, h := range cat.Handlers() {
		if !off[h.Name()] {
			_ = cat.Enable(h.Kind(), h.Name(), nil, deps)
		}
	}
	return &rules.Compiler{Catalog: cat, Strategy: strategy, WebSocketDefaults: rules.DefaultWebSocketPolicy()}
}

func compile(t testing.TB, c *rules.Compiler, file, doc string) (*rules.Set, error) {
	t.Helper()
	rs, err := rules.Parse(file, []byte(doc))
	if err != nil {
		return nil, err
	}
	return c.Compile(rs)
}
