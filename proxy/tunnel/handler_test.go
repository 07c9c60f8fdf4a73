package tunnel_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"

	"github.com/portcullis-proxy/portcullis/internal/fetch"
	"github.com/portcullis-proxy/portcullis/internal/registry"
	"github.com/portcullis-proxy/portcullis/pipeline"
	"github.com/portcullis-proxy/portcullis/proxy"
	"github.com/portcullis-proxy/portcullis/rules"
	"github.com/portcullis-proxy/portcullis/testsupport/handlertest/ruleset"
)

// The tests of this package's external half drive the tunnel server
// through the proxy handler, as a running portcullis does: the rule is
// compiled from an access-rules document, the handler runs its pipeline
// and hands the allowed upgrade or streaming response over.

// ruleSet compiles an access-rules document whose rules use the anonymous
// authenticator, the allow or remote_json authorizer and the noop or header
// mutator (the latter sets X-User to the subject), with the json error
// handler.
func ruleSet(t testing.TB, doc string) *rules.Set {
	t.Helper()
	cat := registry.NewCatalog()
	deps := pipeline.Deps{Context: context.Background(), HTTPClient: fetch.NewClient(fetch.ClientOptions{})}
	for _, err := range []error{
		cat.Authenticators.Enable("anonymous", nil, deps),
		cat.Authorizers.Enable("allow", nil, deps),
		cat.Authorizers.Enable("remote_json", nil, deps),
		cat.Mutators.Enable("noop", nil, deps),
		cat.Mutators.Enable("header", json.RawMessage(`{"headers":{"X-User":"{{ print .Subject }}"}}`), deps),
		cat.ErrorHandlers.Enable("json", nil, deps),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	return ruleset.Compile(t, cat, doc)
}

// proxyHandler is the proxy handler serving set, handing WebSocket
// upgrades to up and streaming responses to streams (either nil: not
// handed over).
func proxyHandler(set *rules.Set, up proxy.Upgrader, streams proxy.StreamGovernor) http.Handler {
	return proxy.NewHandler(proxy.HandlerOptions{DecisionOptions: proxy.DecisionOptions{Rules: ruleset.Static{Set: set}}, Upgrade: up, Stream: streams})
}
