package rules_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/portcullis-proxy/portcullis/pipeline"
	"github.com/portcullis-proxy/portcullis/rules"
	"github.com/portcullis-proxy/portcullis/testsupport/handlertest"
)

// errorsRule is a rule, matching host id.test, whose error handlers are
// the YAML list errs.
func errorsRule(id, errs string) string {
	return handlertest.Rule{ID: id, URL: "http://" + id + ".test/<.*>", Authenticators: []string{"noop"}, More: []string{"errors: " + errs}}.YAML()
}

// answeredBy names the error handler chosen for err on r, told apart by
// the answer each writes: a redirect's Location, a challenge, or a JSON
// body (with the error's reason when verbose); "" when none is chosen.
func answeredBy(t *testing.T, h pipeline.ErrorHandler, r *http.Request, err error) string {
	t.Helper()
	if h == nil {
		return ""
	}
	w := httptest.NewRecorder()
	h.HandleError(w, r, err)
	switch {
	case w.Header().Get("Location") != "":
		return "redirect"
	case w.Header().Get("WWW-Authenticate") != "":
		return "www_authenticate"
	}
	var body pipeline.ErrorBody
	if e := json.Unmarshal(w.Body.Bytes(), &body); e != nil {
		t.Fatalf("answer %d %q is none of the handlers'", w.Code, w.Body.String())
	}
	if body.Error.Reason != "" {
		return "json verbose"
	}
	return "json"
}

func request(accept string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "http://app.test/", nil)
	if accept != "" {
		r.Header.Set("Accept", accept)
	}
	return r
}

// Each error handler's `when` chooses the errors and requests it answers;
// the others go to the fallback (json, or www_authenticate below).
func TestErrorHandlerWhen(t *testing.T) {
	unauthorized, forbidden := pipeline.Unauthorized("x", nil), pipeline.Forbidden("x", errors.New("policy p1 denies"))
	cases := []struct {
		name     string
		fallback []string
		errs     string
		accept   string
		err      error
		want     string
	}{
		// A browser without a session is redirected, an API client is not
		// (it gets the next handler, e.g. json or www_authenticate).
		{"redirect: browser", nil, redirectWhen, "text/html,application/xhtml+xml,*/*;q=0.8", unauthorized, "redirect"},
		{"redirect: browser denied", nil, redirectWhen, "text/html", forbidden, "redirect"},
		{"redirect: API client", nil, redirectWhen, "application/json", unauthorized, "json"},
		{"redirect: no Accept", nil, redirectWhen, "", unauthorized, "json"},
		{"redirect: error not listed", nil, redirectWhen, "text/html", pipeline.Unavailable("identity provider unavailable", nil), "json"},
		{"redirect: empty when answers every error", nil, `[{handler: redirect, config: {to: "http://login.test/"}}]`, "", unauthorized, "redirect"},

		{"www_authenticate: an API client's 401", nil, challengeWhen, "application/json", unauthorized, "www_authenticate"},
		{"www_authenticate: a 403 it does not list", nil, challengeWhen, "application/json", forbidden, "json"},
		{"www_authenticate: a browser", nil, challengeWhen, "text/html", unauthorized, "json"},

		{"json: an error it does not list", []string{"www_authenticate"}, `[{handler: json, config: {verbose: true, when: [{error: [forbidden]}]}}]`, "", unauthorized, "www_authenticate"},
		{"json: a listed error", []string{"www_authenticate"}, `[{handler: json, config: {verbose: true, when: [{error: [forbidden]}]}}]`, "", forbidden, "json verbose"},
	}
	for _, tc := range cases {
		c := compiler(t, rules.Regexp)
		c.Fallback = tc.fallback
		set, err := compile(t, c, "rules.yml", errorsRule("r", tc.errs))
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		rule, _ := set.Get("r")
		r := request(tc.accept)
		if got := answeredBy(t, rule.ErrorHandler(r, tc.err), r, tc.err); got != tc.want {
			t.Errorf("%s: answered by %q, want %q", tc.name, got, tc.want)
		}
	}
}

const (
	redirectWhen  = `[{handler: redirect, config: {to: "http://login.test/", when: [{error: [unauthorized, forbidden], request: {header: {accept: [text/html]}}}]}}]`
	challengeWhen = `[{handler: www_authenticate, config: {when: [{error: [unauthorized], request: {header: {accept: [application/json]}}}]}}]`
)

// A `when` in the handler's global config (errors.handlers.redirect.config
// .when) applies to rules that set none and to the fallback; a rule's own
// `when`, even an empty one, replaces it.
func TestErrorHandlerGlobalWhen(t *testing.T) {
	c := compiler(t, rules.Regexp)
	global := json.RawMessage(`{"to":"http://login.test/","when":[{"error":["unauthorized"]}]}`)
	if err := c.Catalog.Enable(pipeline.KindErrorHandler, "redirect", global, pipeline.Deps{}); err != nil {
		t.Fatal(err)
	}
	c.Fallback = []string{"redirect", "json"}
	doc := errorsRule("r", `[{handler: redirect}]`) + errorsRule("own", `[{handler: redirect, config: {when: []}}]`)
	set, err := compile(t, c, "rules.yml", doc)
	if err != nil {
		t.Fatal(err)
	}
	rule, _ := set.Get("r")
	own, _ := set.Get("own")
	unauthorized, forbidden := pipeline.Unauthorized("x", nil), pipeline.Forbidden("x", nil)
	r := request("")
	for _, tc := range []struct {
		name string
		h    pipeline.ErrorHandler
		err  error
		want string
	}{
		{"rule, listed error", rule.ErrorHandler(r, unauthorized), unauthorized, "redirect"},
		{"rule, other error", rule.ErrorHandler(r, forbidden), forbidden, "json"},
		{"own empty when", own.ErrorHandler(r, forbidden), forbidden, "redirect"},
		{"fallback, listed error", set.FallbackHandler(r, unauthorized), unauthorized, "redirect"},
		{"fallback, other error", set.FallbackHandler(r, forbidden), forbidden, "json"},
	} {
		if got := answeredBy(t, tc.h, r, tc.err); got != tc.want {
			t.Errorf("%s: answered by %q, want %q", tc.name, got, tc.want)
		}
	}
}

// A `when` that does not decode or compile fails the rule, naming what is
// wrong; so does a global one, for the fallback.
func TestErrorHandlerWhenErrors(t *testing.T) {
	for _, tc := range []struct{ errs, want string }{
		{`[{handler: redirect, config: {to: "http://l/", when: [{request: {cidr: [nope]}}]}}]`, `error handler "redirect": when[0]: invalid CIDR "nope"`},
		{`[{handler: redirect, config: {to: "http://l/", when: [{errror: [forbidden]}]}}]`, `error handler "redirect": json: unknown field "errror"`},
		{`[{handler: json, config: {when: {error: [forbidden]}}}]`, `error handler "json": key "when"`},
		{`[{handler: json, config: {verbos: true, when: []}}]`, `error handler "json": json: unknown field "verbos"`},
	} {
		_, err := compile(t, compiler(t, rules.Regexp), "rules.yml", errorsRule("r", tc.errs))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error containing %q", tc.errs, err, tc.want)
		}
	}
	c := compiler(t, rules.Regexp)
	if err := c.Catalog.Enable(pipeline.KindErrorHandler, "json", json.RawMessage(`{"when":[{"request":{"cidr":["nope"]}}]}`), pipeline.Deps{}); err != nil {
		t.Fatal(err)
	}
	if _, err := compile(t, c, "rules.yml", errorsRule("r", `[]`)); err == nil || !strings.Contains(err.Error(), `errors.fallback: error handler "json": when[0]: invalid CIDR "nope"`) {
		t.Errorf("a broken global when: %v", err)
	}
}
