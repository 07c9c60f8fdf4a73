package handlertest

import (
	"encoding/json"
	"testing"

	"github.com/portcullis-proxy/portcullis/pipeline"
)

// Bind enables a handler as the catalog does: global (nil for none) is
// decoded as the handler's global config C, newRB makes the rule builder
// with deps, and the builder returned merges each rule's config onto
// global. It also returns the rule builder newRB made, for a test that
// reaches into it. A global config or a builder that fails, fails tb.
func Bind[C, T any](tb testing.TB, global json.RawMessage, deps pipeline.Deps, newRB func(*C, pipeline.Deps) (pipeline.RuleBuilder[C, T], error)) (pipeline.Builder[T], pipeline.RuleBuilder[C, T]) {
	tb.Helper()
	g, err := pipeline.GlobalConfig[C](global)
	if err != nil {
		tb.Fatal(err)
	}
	rb, err := newRB(g, deps)
	if err != nil {
		tb.Fatal(err)
	}
	return pipeline.Bind(global, rb), rb
}

// Build is the handler a rule with config rule gets from b, failing tb if
// b refuses the config.
func Build[T any](tb testing.TB, b pipeline.Builder[T], rule json.RawMessage) T {
	tb.Helper()
	h, err := b.Build(rule)
	if err != nil {
		tb.Fatal(err)
	}
	return h
}

// Enable is the builder factory f makes from global (nil for none) and
// deps, as the catalog enables a handler, failing tb if f refuses.
func Enable[T any](tb testing.TB, f pipeline.Factory[T], global json.RawMessage, deps pipeline.Deps) pipeline.Builder[T] {
	tb.Helper()
	b, err := f(global, deps)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}
