package rules_test

import (
	"errors"
	"fmt"
	"net/url"
	"reflect"
	"strings"
	"testing"

	"github.com/portcullis-proxy/portcullis/pipeline"
	"github.com/portcullis-proxy/portcullis/rules"
)

func ruleDoc(id, pattern string, methods ...string) string {
	return fmt.Sprintf("- id: %q\n  match:\n    url: %q\n    methods: [%s]\n  authenticators: [{handler: noop}]\n  authorizer: {handler: allow}\n  mutators: [{handler: noop}]\n",
		id, pattern, strings.Join(methods, ", "))
}

func mustURL(t testing.TB, s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func TestMatchStrategies(t *testing.T) {
	cases := []struct {
		strategy rules.Strategy
		pattern  string
		method   string
		url      string
		match    bool
		groups   []string
	}{
		// regexp, Oathkeeper's default: the parts inside < > are regular
		// expressions and become capture groups; the rest is literal.
		{rules.Regexp, "http://my-app/some-route/<.*>", "GET", "http://my-app/some-route/foo/bar", true, []string{"foo/bar"}},
		{rules.Regexp, "http://my-app/some-route/<.*>", "GET", "http://my-app/some-routeX/foo", false, nil},
		{rules.Regexp, "<https|http>://my-app/<[0-9]+>", "GET", "https://my-app/42", true, []string{"https", "42"}},
		{rules.Regexp, "<https|http>://my-app/<[0-9]+>", "GET", "https://my-app/42a", false, nil},
		{rules.Regexp, "http://my-app/a.b", "GET", "http://my-app/aXb", false, nil},
		{rules.Regexp, "http://my-app/a.b", "GET", "http://my-app/a.b", true, []string{}},
		{rules.Regexp, "http://my-app/users/<(\\w+)>/posts", "GET", "http://my-app/users/alice/posts", true, []string{"alice", "alice"}},
		{rules.Regexp, "http://my-app/<.*>", "POST", "http://my-app/x", false, nil},
		{rules.Regexp, "http://my-app/x", "GET", "http://my-app/x?token=1", true, []string{}},
		// glob: gobwas/glob with '.' and '/' as separators.
		{rules.Glob, "http://my-app/some-route/<*>", "GET", "http://my-app/some-route/foo", true, []string{}},
		{rules.Glob, "http://my-app/some-route/<*>", "GET", "http://my-app/some-route/foo/bar", false, nil},
		{rules.Glob, "http://my-app/some-route/<**>", "GET", "http://my-app/some-route/foo/bar", true, []string{}},
		{rules.Glob, "http://<{my-app,other-app}>/x", "GET", "http://other-app/x", true, []string{}},
		{rules.Glob, "http://<*>.example.com/x", "GET", "http://a.b.example.com/x", false, nil},
		{rules.Glob, "http://my-app/a*b", "GET", "http://my-app/aXb", false, nil},
		{rules.Glob, "http://my-app/a*b", "GET", "http://my-app/a*b", true, []string{}},
	}
	for _, tc := range cases {
		t.Run(string(tc.strategy)+" "+tc.pattern+" "+tc.url, func(t *testing.T) {
			set, err := compile(t, compiler(t, tc.strategy), "f", ruleDoc("r", tc.pattern, "GET"))
			if err != nil {
				t.Fatal(err)
			}
			r, groups, err := set.Match(tc.method, mustURL(t, tc.url))
			if tc.match != (err == nil) {
				t.Fatalf("Match(%s %s) error = %v, want match %v", tc.method, tc.url, err, tc.match)
			}
			if !tc.match {
				if !errors.Is(err, pipeline.ErrNotFound) {
					t.Errorf("no match error = %v, want a 404", err)
				}
				return
			}
			if r.ID != "r" {
				t.Errorf("rule = %q", r.ID)
			}
			if groups == nil {
				groups = []string{}
			}
			if !reflect.DeepEqual(groups, tc.groups) {
				t.Errorf("groups = %q, want %q", groups, tc.groups)
			}
		})
	}
}

func TestMatchMoreThanOneRuleIsAnError(t *testing.T) {
	doc := ruleDoc("a", "http://my-app/<.*>", "GET") + ruleDoc("b", "http://my-app/users/<.*>", "GET", "POST")
	set, err := compile(t, compiler(t, rules.Regexp), "f", doc)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := set.Match("GET", mustURL(t, "http://my-app/users/1")); !errors.Is(err, rules.ErrManyRules) || pipeline.StatusOf(err) != 500 {
		t.Errorf("two matching rules: error = %v, want ErrManyRules (500)", err)
	}
	if r, _, err := set.Match("POST", mustURL(t, "http://my-app/users/1")); err != nil || r.ID != "b" {
		t.Errorf("POST: %v %v, want rule b", r, err)
	}
	if r, _, err := set.Match("GET", mustURL(t, "http://my-app/other")); err != nil || r.ID != "a" {
		t.Errorf("GET other: %v %v, want rule a", r, err)
	}
	// The prover finds the overlap of two patterns, not only of a literal
	// against a pattern: a~b, then a~c and b~c.
	if o := set.Overlaps(); len(o.Overlaps) != 1 || len(o.Unproven) != 0 {
		t.Errorf("Overlaps() = %v, want a~b", o.Errors())
	}
	set, err = compile(t, compiler(t, rules.Regexp), "f", doc+ruleDoc("c", "http://my-app/users/admin", "GET"))
	if err != nil {
		t.Fatal(err)
	}
	if o := set.Overlaps(); len(o.Overlaps) != 3 {
		t.Errorf("Overlaps() = %v, want 3 pairs (a~b, a~c, b~c)", o.Errors())
	}
}

func TestIndexFindsRulesSharingPrefixes(t *testing.T) {
	var doc strings.Builder
	// Prefixes that split radix nodes in every way: equal, nested, diverging.
	patterns := []string{
		"http://a.example/", "http://a.example/api/<.*>", "http://a.example/apix", "http://a.example/b/<.*>",
		"<.*>://z.example/x", "http://a.ex<.*>/deep", "http://a.example/api/v1/users",
	}
	for i, p := range patterns {
		doc.WriteString(ruleDoc(fmt.Sprint("r", i), p, "GET"))
	}
	set, err := compile(t, compiler(t, rules.Regexp), "f", doc.String())
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]string{
		"http://a.example/":          "r0",
		"http://a.example/api/users": "r1",
		"http://a.example/apix":      "r2",
		"http://a.example/b/c":       "r3",
		"https://z.example/x":        "r4",
		"http://a.exotic/deep":       "r5",
	}
	for u, want := range cases {
		r, _, err := set.Match("GET", mustURL(t, u))
		if err != nil || r.ID != want {
			t.Errorf("Match(%s) = %v, %v; want %s", u, r, err, want)
		}
	}
	if _, _, err := set.Match("GET", mustURL(t, "http://a.example/api/v1/users")); !errors.Is(err, rules.ErrManyRules) {
		t.Errorf("r1 and r6 both match: %v", err)
	}
}

// BenchmarkMatch measures rule matching at 10, 100 and 1,000 rules, each
// rule a distinct route of a distinct service, matching the last rule.
func BenchmarkMatch(b *testing.B) {
	for _, n := range []int{10, 100, 1000} {
		for _, strategy := range []rules.Strategy{rules.Regexp, rules.Glob} {
			b.Run(fmt.Sprintf("%s/rules=%d", strategy, n), func(b *testing.B) {
				var doc strings.Builder
				for i := 0; i < n; i++ {
					p := fmt.Sprintf("https://svc%d.example.com/api/v1/items/<[0-9]+>", i)
					if strategy == rules.Glob {
						p = fmt.Sprintf("https://svc%d.example.com/api/v1/items/<*>", i)
					}
					doc.WriteString(ruleDoc(fmt.Sprint("r", i), p, "GET", "POST"))
				}
				set, err := compile(b, compiler(b, strategy), "f", doc.String())
				if err != nil {
					b.Fatal(err)
				}
				u := mustURL(b, fmt.Sprintf("https://svc%d.example.com/api/v1/items/12345", n-1))
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					if _, _, err := set.Match("GET", u); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
