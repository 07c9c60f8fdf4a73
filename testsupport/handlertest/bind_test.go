package handlertest_test

import (
	"testing"

	"github.com/portcullis-proxy/portcullis/pipeline"
	"github.com/portcullis-proxy/portcullis/testsupport/handlertest"
)

// Enable and Build make the handler a rule gets, with the rule's config.
func TestEnableAndBuild(t *testing.T) {
	type config struct{ Name string }
	f := pipeline.TypedFactory(func(c *config, _ pipeline.Deps) (string, error) { return "hello " + c.Name, nil })
	b := handlertest.Enable(t, f, nil, handlertest.Deps(t))
	if got := handlertest.Build(t, b, handlertest.JSON(t, map[string]string{"Name": "rule"})); got != "hello rule" {
		t.Errorf("Build = %q, want hello rule", got)
	}
}
