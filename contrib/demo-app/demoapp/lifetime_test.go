package demoapp

import (
	"context"
	"net"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/portcullis-proxy/portcullis/internal/registry"
	"github.com/portcullis-proxy/portcullis/pipeline"
	"github.com/portcullis-proxy/portcullis/proxy"
	"github.com/portcullis-proxy/portcullis/rules"
)

// portcullisAPI serves a real portcullis API over the rules document.
func portcullisAPI(t *testing.T, doc string) string {
	t.Helper()
	cat := registry.NewCatalog()
	deps := pipeline.Deps{Context: context.Background()}
	_ = cat.Authenticators.Enable("anonymous", nil, deps)
	_ = cat.Authorizers.Enable("allow", nil, deps)
	_ = cat.Mutators.Enable("noop", nil, deps)
	_ = cat.ErrorHandlers.Enable("json", nil, deps)
	rs, err := rules.Parse("rules.yml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	set, err := (&rules.Compiler{Catalog: cat, Strategy: rules.Regexp, WebSocketDefaults: rules.DefaultWebSocketPolicy()}).Compile(rs)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(proxy.NewAPI(proxy.APIOptions{DecisionOptions: proxy.DecisionOptions{Rules: fixedRules{set}}}))
	t.Cleanup(srv.Close)
	return srv.URL
}

type fixedRules struct{ s *rules.Set }

func (f fixedRules) Current() *rules.Set { return f.s }

const echoRule = "- id: demo-echo\n  match: {url: \"http://x/<(ws)?>\", methods: [GET]}\n  authenticators: [{handler: anonymous}]\n  authorizer: {handler: allow}\n  mutators: [{handler: noop}]\n"

// The echo page reads the rule's max lifetime from portcullis's API and
// hands it to its countdown; without one it shows none.
func TestIndexCountsDownTheRulesLifetime(t *testing.T) {
	api := portcullisAPI(t, echoRule+"  websocket: {max_lifetime: 90s}\n")
	down, _ := net.Listen("tcp", "127.0.0.1:0")
	downURL := "http://" + down.Addr().String()
	down.Close()
	for _, tc := range []struct {
		api, rule string
		want      string
	}{
		{api, "demo-echo", `data-max-lifetime="90" >Max lifetime 90 s:`},
		{portcullisAPI(t, echoRule), "demo-echo", `data-max-lifetime="0" hidden>`},
		{api, "other", `data-max-lifetime="0" hidden>`},
		{downURL, "demo-echo", `data-max-lifetime="0" hidden>`},
	} {
		h, err := New(Config{KratosPublicURL: downURL, PortcullisAPIURL: tc.api, Rule: tc.rule})
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(h)
		_, page := get(t, srv.URL+"/", "")
		srv.Close()
		if !strings.Contains(page, tc.want) {
			t.Errorf("api %s rule %s: page lacks %q", tc.api, tc.rule, tc.want)
		}
		if tc.want[len(`data-max-lifetime="`)] == '9' && !strings.Contains(page, "var maxLifetime =  90 ;") {
			t.Errorf("the script is not given the lifetime:\n%s", page)
		}
	}
	if _, err := New(Config{KratosPublicURL: downURL, PortcullisAPIURL: "127.0.0.1:4456", Rule: "r"}); err == nil {
		t.Error("a relative API URL was accepted")
	}
	if _, err := New(Config{KratosPublicURL: downURL, PortcullisAPIURL: api}); err == nil {
		t.Error("an API URL without a rule was accepted")
	}
}
