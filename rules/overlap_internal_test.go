package rules

import (
	"errors"
	"regexp/syntax"
	"strings"
	"testing"
)

// opaquePattern is a matcher the prover has no automaton for, the shape of
// a backtracking engine's pattern.
type opaquePattern struct{ prefix string }

func (o opaquePattern) match(u string) ([]string, bool) { return nil, strings.HasPrefix(u, o.prefix) }

// A pattern kind without an automaton is "could not prove" against every
// rule it may meet, never disjoint; rules it cannot meet are not reported.
func TestOverlapsUndecidablePatternKind(t *testing.T) {
	set, err := pairSet(Regexp, "http://example.com/<.*>", "http://other.example/<.*>")
	if err != nil {
		t.Fatal(err)
	}
	set.rules[1].pattern = opaquePattern{"http://example.com/"}
	set.rules[1].Match.URL = "http://example.com/<(?=x)>"
	set.index = prefixIndex{}
	for i, c := range set.rules {
		set.index.insert(literalPrefix(c.Match.URL), i)
	}
	rep := set.Overlaps()
	if len(rep.Overlaps) != 0 || len(rep.Unproven) != 1 || !errors.Is(rep.Unproven[0], ErrUndecidable) {
		t.Fatalf("Overlaps() = %v, want one undecided pair", rep.Errors())
	}
	want := `f:2: rule "b" and rule "a" (f:1) may overlap: could not prove the rules disjoint: rule "b"'s match.url "http://example.com/<(?=x)>" uses a matcher without an automaton`
	if got := rep.Unproven[0].Error(); got != want {
		t.Errorf("message:\n got %s\nwant %s", got, want)
	}
	set.rules[1].Match.URL = "http://elsewhere/<(?=x)>"
	set.index = prefixIndex{}
	for i, c := range set.rules {
		set.index.insert(literalPrefix(c.Match.URL), i)
	}
	if rep := set.Overlaps(); len(rep.Errors()) != 0 {
		t.Errorf("rules whose prefixes cannot meet: %v", rep.Errors())
	}
}

// The product search gives up at its state bound with ErrUndecidable.
func TestIntersectionStateBound(t *testing.T) {
	mk := func(p string) *nfa {
		pat, err := compilePattern(Regexp, p)
		if err != nil {
			t.Fatal(err)
		}
		n, err := newNFA(mustLanguage(t, pat))
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	// Lengths that are multiples of 1018 against odd lengths 1+1042k:
	// disjoint, but the product walks their common cycle (lcm 530,378
	// positions) before it could know.
	a := mk("<(?:" + strings.Repeat("x", 1018) + ")*>")
	b := mk("<x(?:" + strings.Repeat("x", 1042) + ")*>")
	_, found, err := intersection([]*nfa{a, b})
	if found || !errors.Is(err, ErrUndecidable) {
		t.Fatalf("intersection = %v, %v; want ErrUndecidable past %d states", found, err, maxStates)
	}
}

func mustLanguage(t *testing.T, p pattern) *syntax.Regexp {
	t.Helper()
	re, err := p.(languager).language()
	if err != nil {
		t.Fatal(err)
	}
	return re
}
