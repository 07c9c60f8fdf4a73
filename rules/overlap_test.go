package rules_test

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/portcullis-proxy/portcullis/rules"
)

// overlapCases is the prover's table: pairs that overlap, with the witness
// the prover must print, and pairs that do not ("" witness).
var overlapCases = []struct {
	strategy rules.Strategy
	a, b     string
	methodsA []string
	methodsB []string
	method   string
	witness  string
}{
	// regexp: two patterns, neither literal.
	{rules.Regexp, "http://example.com/<.*>", "http://example.com/api/<.*>", nil, nil, "GET", "http://example.com/api/"},
	{rules.Regexp, "http://example.com/<[a-z]+>", "http://example.com/<[a-c]+>", nil, nil, "GET", "http://example.com/a"},
	{rules.Regexp, "http://example.com/<[a-z]+>", "http://example.com/<[0-9]+>", nil, nil, "", ""},
	{rules.Regexp, "http://example.com/<[a-z]+>/x", "http://example.com/<[a-c]+>/y", nil, nil, "", ""},
	{rules.Regexp, "<https?>://example.com/<.*>", "https://<[^/]+>/admin", nil, nil, "GET", "https://example.com/admin"},
	{rules.Regexp, "http://example.com/users/<[0-9]+>", "http://example.com/users/<[0-9]{3}>", nil, nil, "GET", "http://example.com/users/000"},
	{rules.Regexp, "http://example.com/users/<[0-9]{4,}>", "http://example.com/users/<[0-9]{1,3}>", nil, nil, "", ""},
	// Anchors inside a part: $ before more literal text can never match.
	{rules.Regexp, "http://example.com/<a$>b", "http://example.com/<.*>", nil, nil, "", ""},
	{rules.Regexp, "http://example.com/<^a>", "http://example.com/<.*>", nil, nil, "", ""},
	{rules.Regexp, "http://example.com/<(?m)a$>", "http://example.com/<.*>", nil, nil, "GET", "http://example.com/a"},
	{rules.Regexp, `http://example.com/<\bx.*>`, "http://example.com/<.*>", nil, nil, "GET", "http://example.com/x"},
	{rules.Regexp, `http://example.com/a<\bx.*>`, "http://example.com/<.*>", nil, nil, "", ""},
	{rules.Regexp, `http://example.com/x<\b.*>`, "http://example.com/<.*>", nil, nil, "GET", "http://example.com/x"},
	{rules.Regexp, `http://example.com/x<\B.*>`, "http://example.com/<[a-z-]+>", nil, nil, "GET", "http://example.com/xx"},
	// Case: literal text is case-sensitive, (?i) folds.
	{rules.Regexp, "http://example.com/ADMIN", "http://example.com/<admin>", nil, nil, "", ""},
	{rules.Regexp, "http://example.com/ADMIN", "http://example.com/<(?i)admin>", nil, nil, "GET", "http://example.com/ADMIN"},
	{rules.Regexp, "http://example.com/<[A-Z]+>", "http://example.com/<(?i)k>", nil, nil, "GET", "http://example.com/K"},
	{rules.Regexp, "http://example.com/<\u212a>", "http://example.com/<(?i)k>", nil, nil, "GET", "http://example.com/\u212a"},
	// Methods and hosts.
	{rules.Regexp, "http://example.com/<.*>", "http://example.com/<.*>", []string{"GET"}, []string{"POST"}, "", ""},
	{rules.Regexp, "http://example.com/<.*>", "http://example.com/<.*>", []string{"DELETE", "PUT"}, []string{"POST", "PUT"}, "PUT", "http://example.com/"},
	{rules.Regexp, "http://a.example.com/<.*>", "http://b.example.com/<.*>", nil, nil, "", ""},
	{rules.Regexp, "http://<[a-z]+>.example.com/x", "http://api.example.com/<.*>", nil, nil, "GET", "http://api.example.com/x"},
	// The dot of a regexp part is any rune but \n.
	{rules.Regexp, "http://example.com/a<.>c", "http://example.com/a/c", nil, nil, "GET", "http://example.com/a/c"},
	{rules.Regexp, "http://example.com/<.>", "http://example.com/<\n>", nil, nil, "", ""},
	{rules.Regexp, "http://example.com/<(?s).>", "http://example.com/<\n>", nil, nil, "GET", "\"http://example.com/\\n\""},
	// Witnesses outside the http(s) URL shape are still overlaps.
	{rules.Regexp, "<.*>", "<.*>", nil, nil, "GET", "http://x"},
	{rules.Regexp, "<ftp>://<.*>", "<[a-z]+>://x", nil, nil, "GET", "ftp://x"},
	{rules.Regexp, "http://example.com/literal", "http://example.com/literal", nil, nil, "GET", "http://example.com/literal"},

	// glob, with '.' and '/' as separators.
	{rules.Glob, "http://example.com/<**>", "http://example.com/api/<**>", nil, nil, "GET", "http://example.com/api/"},
	{rules.Glob, "http://example.com/<*>", "http://example.com/api/<*>", nil, nil, "", ""},
	{rules.Glob, "http://example.com/<*>", "http://example.com/<[a-c]*>", nil, nil, "GET", "http://example.com/a"},
	{rules.Glob, "http://example.com/<[a-z]>", "http://example.com/<[0-9]>", nil, nil, "", ""},
	{rules.Glob, "http://example.com/<[!a-z]>", "http://example.com/<[0-9]>", nil, nil, "GET", "http://example.com/0"},
	{rules.Glob, "http://example.com/<[!a-z]>", "http://example.com/<?>", nil, nil, "GET", "http://example.com/0"},
	// [!…] matches a separator, ? does not.
	{rules.Glob, "http://example.com/a<[!a-z]>b", "http://example.com/a/b", nil, nil, "GET", "http://example.com/a/b"},
	{rules.Glob, "http://example.com/a<?>b", "http://example.com/a/b", nil, nil, "", ""},
	{rules.Glob, "http://example.com/a<[!xyz]>b", "http://example.com/a.b", nil, nil, "GET", "http://example.com/a.b"},
	{rules.Glob, "http://example.com/<{a,b}>/x", "http://example.com/<{b,c}>/<*>", nil, nil, "GET", "http://example.com/b/x"},
	{rules.Glob, "http://example.com/<{a,b}>/x", "http://example.com/<{c,d}>/x", nil, nil, "", ""},
	{rules.Glob, "http://<*>.example.com/x", "http://<**>.example.com/x", nil, nil, "GET", "http://.example.com/x"},
	{rules.Glob, "http://<*>.example.com/x", "http://a.b.example.com/x", nil, nil, "", ""},
	{rules.Glob, "http://<**>.example.com/x", "http://a.b.example.com/x", nil, nil, "GET", "http://a.b.example.com/x"},
	{rules.Glob, "http://example.com/<[abc]>", "http://example.com/<[cde]>", nil, nil, "GET", "http://example.com/c"},
	{rules.Glob, "http://example.com/<[abc]>", "http://example.com/<[def]>", nil, nil, "", ""},
	// Case is exact in globs.
	// [A-Z]* is one rune of the range, then any run of non-separators.
	{rules.Glob, "http://example.com/<[A-Z]*>", "http://example.com/<[a-z]*>", nil, nil, "", ""},
	{rules.Glob, "http://example.com/<[A-Z]*>", "http://example.com/<*>", nil, nil, "GET", "http://example.com/A"},
	{rules.Glob, "http://example.com/<[A-Z]>", "http://example.com/<[a-z]>", nil, nil, "", ""},
	// Glob metacharacters outside < > are literal text.
	{rules.Glob, "http://example.com/a*b", "http://example.com/a<*>b", nil, nil, "GET", "http://example.com/a*b"},
	{rules.Glob, "http://example.com/a*b", "http://example.com/axb", nil, nil, "", ""},
	{rules.Glob, "http://example.com/<*>", "http://example.com/<*>", []string{"GET"}, []string{"POST"}, "", ""},
}

func TestOverlaps(t *testing.T) {
	for _, tc := range overlapCases {
		name := fmt.Sprintf("%s %s ~ %s", tc.strategy, tc.a, tc.b)
		t.Run(name, func(t *testing.T) {
			ma, mb := tc.methodsA, tc.methodsB
			if ma == nil {
				ma = []string{"GET"}
			}
			if mb == nil {
				mb = []string{"GET"}
			}
			doc := ruleDoc("a", tc.a, ma...) + ruleDoc("b", tc.b, mb...)
			set, err := compile(t, compiler(t, tc.strategy), "rules.yml", doc)
			if err != nil {
				t.Fatal(err)
			}
			rep := set.Overlaps()
			if len(rep.Unproven) > 0 {
				t.Fatalf("unproven: %v", rep.Errors())
			}
			if tc.witness == "" {
				if len(rep.Overlaps) != 0 {
					t.Fatalf("Overlaps() = %v, want none", rep.Errors())
				}
				return
			}
			if len(rep.Overlaps) != 1 {
				t.Fatalf("Overlaps() = %v, want one overlap", rep.Errors())
			}
			o := rep.Overlaps[0]
			if o.A.ID != "a" || o.B.ID != "b" || o.Method != tc.method {
				t.Errorf("overlap = %s %s~%s, want %s a~b", o.Method, o.A.ID, o.B.ID, tc.method)
			}
			got := o.Witness
			if strings.HasPrefix(tc.witness, `"`) {
				got = fmt.Sprintf("%q", got)
			}
			if got != tc.witness {
				t.Errorf("witness = %q, want %q", got, tc.witness)
			}
			// The request the witness describes really is a 500.
			if u, err := url.Parse(o.Witness); err == nil && rules.MatchURL(u) == o.Witness {
				if _, _, err := set.Match(o.Method, u); !errors.Is(err, rules.ErrManyRules) {
					t.Errorf("Match(%s %s) = %v, want ErrManyRules", o.Method, o.Witness, err)
				}
			}
		})
	}
}

func TestOverlapMessage(t *testing.T) {
	doc := ruleDoc("a", "http://example.com/<.*>", "GET") + ruleDoc("b", "http://example.com/api/<.*>", "GET")
	set, err := compile(t, compiler(t, rules.Regexp), "rules.yml", doc)
	if err != nil {
		t.Fatal(err)
	}
	rep := set.Overlaps()
	if len(rep.Overlaps) != 1 {
		t.Fatalf("Overlaps() = %v", rep.Errors())
	}
	want := `rules.yml:8: rule "b" overlaps rule "a" (rules.yml:1): both match GET http://example.com/api/ — requests matching both get 500`
	if got := rep.Overlaps[0].Error(); got != want {
		t.Errorf("message:\n got %s\nwant %s", got, want)
	}
}
