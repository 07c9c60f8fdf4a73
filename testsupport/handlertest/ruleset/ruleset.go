// Package ruleset compiles access-rules documents for tests as a running
// portcullis compiles its rules files: parsed, then compiled over a
// catalog with the regexp strategy and the default WebSocket policy. It
// is apart from handlertest because it imports rules, whose own tests
// import handlertest; it is imported only by _test files.
package ruleset

import (
	"testing"

	"github.com/portcullis-proxy/portcullis/pipeline"
	"github.com/portcullis-proxy/portcullis/rules"
)

// Compile is doc, an access-rules document read as the file rules.yml,
// compiled over cat, whose enabled handlers the rules may name; the json
// error handler, every rule's fallback, must be among them. A document
// that does not parse or compile fails tb.
func Compile(tb testing.TB, cat *pipeline.Catalog, doc string) *rules.Set {
	tb.Helper()
	rs, err := rules.Parse("rules.yml", []byte(doc))
	if err != nil {
		tb.Fatal(err)
	}
	c := &rules.Compiler{Catalog: cat, Strategy: rules.Regexp, WebSocketDefaults: rules.DefaultWebSocketPolicy()}
	set, err := c.Compile(rs)
	if err != nil {
		tb.Fatal(err)
	}
	return set
}

// Static serves one compiled rule set, as the proxy's rule source does
// between two reloads. The zero value serves none (nil).
type Static struct{ Set *rules.Set }

// Current returns s.Set.
func (s Static) Current() *rules.Set { return s.Set }
