package rules

import (
	"errors"
	"fmt"
	"net/http"
	"sort"
)

// Overlap is a proven overlap: two rules that both match the request
// Method Witness, which is therefore answered 500 ("expected exactly one
// rule") at run time. A was loaded before B.
type Overlap struct {
	A, B    *Compiled
	Method  string
	Witness string // scheme://host/path; both rules' matchers accept it
}

func (o Overlap) Error() string {
	return fmt.Sprintf("%s: rule %q overlaps rule %q (%s): both match %s %s — requests matching both get 500",
		o.B.Pos(), o.B.ID, o.A.ID, o.A.Pos(), o.Method, printable(o.Witness))
}

// Unproven is a pair of rules sharing a method whose URL patterns the
// prover could not decide: they may overlap. Err wraps [ErrUndecidable].
type Unproven struct {
	A, B *Compiled
	Err  error
}

func (u Unproven) Error() string {
	return fmt.Sprintf("%s: rule %q and rule %q (%s) may overlap: %v", u.B.Pos(), u.B.ID, u.A.ID, u.A.Pos(), u.Err)
}

func (u Unproven) Unwrap() error { return u.Err }

// OverlapReport is what [Set.Overlaps] found, ordered by the later rule's
// position, then the earlier one's.
type OverlapReport struct {
	Overlaps []Overlap
	Unproven []Unproven
}

// Errors returns every finding as an error, overlaps first.
func (r OverlapReport) Errors() []error {
	var out []error
	for _, o := range r.Overlaps {
		out = append(out, o)
	}
	for _, u := range r.Unproven {
		out = append(out, u)
	}
	return out
}

// methodOrder is the order a witness's method is chosen in.
var methodOrder = []string{
	http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete,
	http.MethodHead, http.MethodOptions, http.MethodConnect, http.MethodTrace,
}

// Overlaps decides, for every pair of rules that share an HTTP method,
// whether one request URL matches both: it intersects the two patterns'
// URL languages as automata (the regexp strategy through regexp/syntax, the
// glob strategy translated to the same form with gobwas/glob's own parser
// and '.' and '/' as separators) and, when the intersection is not empty,
// reports its shortest member — preferring one shaped like an http(s) URL
// — after checking that both rules' real matchers accept it. Only pairs
// whose literal prefixes (the text before the first <) are one a prefix of
// the other can meet, so the prefix index supplies the candidates.
//
// A pair it cannot decide (a pattern kind without an automaton, a product
// over the state bound, a witness the matchers refuse) is Unproven, never
// reported as disjoint.
func (s *Set) Overlaps() OverlapReport {
	var rep OverlapReport
	langs := make([]*nfa, len(s.rules))
	langErr := make([]error, len(s.rules))
	for i, c := range s.rules {
		langs[i], langErr[i] = ruleNFA(c)
	}
	shape, err := newNFA(niceShape)
	if err != nil {
		panic(err) // a constant expression
	}
	var cands []int
	for i, b := range s.rules {
		pb := literalPrefix(b.Match.URL)
		cands = s.index.candidates(pb, cands[:0])
		for _, j := range cands {
			a := s.rules[j]
			// Equal prefixes find each other from both sides: keep the
			// pair once, from the later rule.
			if j == i || (j > i && len(literalPrefix(a.Match.URL)) == len(pb)) {
				continue
			}
			method := commonMethod(a, b)
			if method == "" {
				continue
			}
			first, second := j, i
			if first > second {
				first, second = second, first
			}
			ra, rb := s.rules[first], s.rules[second]
			if err := errors.Join(langErr[first], langErr[second]); err != nil {
				rep.Unproven = append(rep.Unproven, Unproven{A: ra, B: rb, Err: err})
				continue
			}
			w, found, err := intersection([]*nfa{langs[first], langs[second]})
			if err != nil {
				rep.Unproven = append(rep.Unproven, Unproven{A: ra, B: rb, Err: err})
				continue
			}
			if !found {
				continue
			}
			if nice, ok, err := intersection([]*nfa{langs[first], langs[second], shape}); err == nil && ok {
				w = nice
			}
			if err := verifyWitness(ra, rb, w); err != nil {
				rep.Unproven = append(rep.Unproven, Unproven{A: ra, B: rb, Err: err})
				continue
			}
			rep.Overlaps = append(rep.Overlaps, Overlap{A: ra, B: rb, Method: method, Witness: w})
		}
	}
	index := make(map[*Compiled]int, len(s.rules))
	for i, c := range s.rules {
		index[c] = i
	}
	sort.SliceStable(rep.Overlaps, func(x, y int) bool {
		return pairLess(index, rep.Overlaps[x].A, rep.Overlaps[x].B, rep.Overlaps[y].A, rep.Overlaps[y].B)
	})
	sort.SliceStable(rep.Unproven, func(x, y int) bool {
		return pairLess(index, rep.Unproven[x].A, rep.Unproven[x].B, rep.Unproven[y].A, rep.Unproven[y].B)
	})
	return rep
}

func pairLess(index map[*Compiled]int, a1, b1, a2, b2 *Compiled) bool {
	if index[b1] != index[b2] {
		return index[b1] < index[b2]
	}
	return index[a1] < index[a2]
}

// verifyWitness checks w with both rules' real matchers. A matcher that
// refuses it, or panics on it (gobwas/glob has inputs it panics on), leaves
// the pair undecided: the prover never reports what the matchers do not
// confirm, and a rules load never fails because a matcher misbehaves.
func verifyWitness(a, b *Compiled, w string) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%w: a matcher panicked on %q: %v", ErrUndecidable, w, p)
		}
	}()
	_, okA := a.pattern.match(w)
	_, okB := b.pattern.match(w)
	if !okA || !okB {
		return fmt.Errorf("%w: the automata share %q but the matchers do not both accept it", ErrUndecidable, w)
	}
	return nil
}

// ruleNFA builds the automaton of a rule's pattern, or says why it cannot.
func ruleNFA(c *Compiled) (*nfa, error) {
	l, ok := c.pattern.(languager)
	if !ok {
		return nil, fmt.Errorf("%w: rule %q's match.url %q uses a matcher without an automaton", ErrUndecidable, c.ID, c.Match.URL)
	}
	re, err := l.language()
	if err != nil {
		return nil, fmt.Errorf("%w: rule %q's match.url %q: %v", ErrUndecidable, c.ID, c.Match.URL, err)
	}
	n, err := newNFA(re)
	if err != nil {
		return nil, fmt.Errorf("%w: rule %q's match.url %q: %v", ErrUndecidable, c.ID, c.Match.URL, err)
	}
	return n, nil
}

// commonMethod returns the first method, in methodOrder, that both rules
// list, or "".
func commonMethod(a, b *Compiled) string {
	for _, m := range methodOrder {
		if a.methods[m] && b.methods[m] {
			return m
		}
	}
	var shared []string
	for m := range a.methods {
		if b.methods[m] {
			shared = append(shared, m)
		}
	}
	if len(shared) == 0 {
		return ""
	}
	sort.Strings(shared)
	return shared[0]
}
