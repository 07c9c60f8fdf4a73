package ruleset_test

import (
	"testing"

	"github.com/portcullis-proxy/portcullis/internal/registry"
	"github.com/portcullis-proxy/portcullis/pipeline"
	"github.com/portcullis-proxy/portcullis/testsupport/handlertest"
	"github.com/portcullis-proxy/portcullis/testsupport/handlertest/ruleset"
)

// A document over the catalog's enabled handlers compiles into the set
// Static then serves.
func TestCompile(t *testing.T) {
	cat := registry.NewCatalog()
	deps := pipeline.Deps{Context: t.Context()}
	for _, err := range []error{
		cat.Authenticators.Enable("anonymous", nil, deps),
		cat.Authorizers.Enable("allow", nil, deps),
		cat.Mutators.Enable("noop", nil, deps),
		cat.ErrorHandlers.Enable("json", nil, deps),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	set := ruleset.Compile(t, cat, handlertest.Rules(handlertest.Rule{ID: "a", URL: "http://x/<.*>", Upstream: "http://up.test"}))
	src := ruleset.Static{Set: set}
	if src.Current() != set || set.Len() != 1 {
		t.Fatalf("Static serves %v, want the compiled set of 1 rule", src.Current())
	}
	if _, ok := set.Get("a"); !ok {
		t.Error("rule a is not in the set")
	}
	if (ruleset.Static{}).Current() != nil {
		t.Error("the zero Static serves a set")
	}
}
