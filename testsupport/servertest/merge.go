package servertest

import (
	"fmt"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// Merge is the configuration that docs, YAML documents each, make laid
// over one another in order: where two of them map the same key to
// mappings, those merge key by key; any other value of a later document
// replaces the earlier one. It lets a test extend a shared base (as
// [KratosSessions]) with its own settings, each written as a user writes
// them. A document that is not a YAML mapping fails tb; an empty one adds
// nothing.
func Merge(tb testing.TB, docs ...string) string {
	tb.Helper()
	merged := map[string]any{}
	for i, doc := range docs {
		var m map[string]any
		if err := yaml.Unmarshal([]byte(doc), &m); err != nil {
			tb.Fatalf("servertest: Merge: document %d: %v", i+1, err)
		}
		mergeInto(merged, m)
	}
	var out strings.Builder
	enc := yaml.NewEncoder(&out)
	enc.SetIndent(2)
	if err := enc.Encode(merged); err != nil {
		tb.Fatalf("servertest: Merge: %v", err)
	}
	return out.String()
}

func mergeInto(dst, src map[string]any) {
	for k, v := range src {
		if sub, ok := v.(map[string]any); ok {
			if into, ok := dst[k].(map[string]any); ok {
				mergeInto(into, sub)
				continue
			}
		}
		dst[k] = v
	}
}

// KratosSessions is a configuration enabling the session authenticators
// that handlers name, cookie_session and bearer_token, to check sessions
// at a Kratos's whoami URL, the subject being the identity's id;
// cookie_session reads only Kratos's ory_kratos_session cookie. A test
// lays its own settings over it with [Merge].
func KratosSessions(whoamiURL string, handlers ...string) string {
	own := map[string]string{
		"cookie_session": "only: [ory_kratos_session], ",
		"bearer_token":   "",
	}
	doc := "authenticators:\n"
	for _, h := range handlers {
		extra, ok := own[h]
		if !ok {
			panic("servertest: KratosSessions: no session authenticator " + h)
		}
		doc += fmt.Sprintf("  %s:\n    enabled: true\n    config: {check_session_url: %q, %ssubject_from: identity.id}\n", h, whoamiURL, extra)
	}
	return doc
}
