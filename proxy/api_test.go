package proxy_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/portcullis-proxy/portcullis/proxy"
	"github.com/portcullis-proxy/portcullis/rules"
	"github.com/portcullis-proxy/portcullis/testsupport/handlertest"
	"github.com/portcullis-proxy/portcullis/testsupport/handlertest/ruleset"
)

func TestAPIRulesHealthVersion(t *testing.T) {
	var doc strings.Builder
	for i := 0; i < 5; i++ {
		doc.WriteString(handlertest.Rule{ID: fmt.Sprintf("r%d", i), URL: fmt.Sprintf("http://x/%d", i), Authenticators: []string{"noop"}, Upstream: "http://up"}.YAML())
	}
	src := &ruleset.Static{}
	srv := serve(t, proxy.NewAPI(proxy.APIOptions{DecisionOptions: proxy.DecisionOptions{Rules: src}, Version: proxy.Version{Version: "1.2.3"}}))

	if st := getJSON(t, srv.URL+"/health/alive", nil); st != 200 {
		t.Errorf("alive = %d", st)
	}
	if st := getJSON(t, srv.URL+"/health/ready", nil); st != 503 {
		t.Errorf("ready before rules = %d, want 503", st)
	}
	src.Set = ruleSet(t, doc.String())
	if st := getJSON(t, srv.URL+"/health/ready", nil); st != 200 {
		t.Errorf("ready after rules = %d, want 200", st)
	}
	var all []rules.Rule
	getJSON(t, srv.URL+"/rules", &all)
	if len(all) != 5 || all[0].ID != "r0" || all[0].Upstream.URL != "http://up" {
		t.Errorf("GET /rules = %+v", all)
	}
	var page []rules.Rule
	getJSON(t, srv.URL+"/rules?limit=2&offset=3", &page)
	if len(page) != 2 || page[0].ID != "r3" || page[1].ID != "r4" {
		t.Errorf("GET /rules?limit=2&offset=3 = %+v", page)
	}
	if st := getJSON(t, srv.URL+"/rules?limit=x", nil); st != 400 {
		t.Errorf("bad limit = %d, want 400", st)
	}
	var one rules.Rule
	if st := getJSON(t, srv.URL+"/rules/r2", &one); st != 200 || one.ID != "r2" {
		t.Errorf("GET /rules/r2 = %d %+v", st, one)
	}
	if st := getJSON(t, srv.URL+"/rules/nope", nil); st != 404 {
		t.Errorf("GET /rules/nope = %d, want 404", st)
	}
	var v proxy.Version
	getJSON(t, srv.URL+"/version", &v)
	if v.Version != "1.2.3" {
		t.Errorf("version = %+v", v)
	}
}
