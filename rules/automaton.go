package rules

import (
	"fmt"
	"regexp/syntax"
	"strings"
	"unicode"
	"unicode/utf8"
)

// nfa is a pattern's URL language as a regexp/syntax program: a
// nondeterministic automaton over runes, read as a whole-string match
// (start at the first rune, accept only after the last).
type nfa struct {
	prog *syntax.Prog
	// ranges holds, for each consuming instruction, the normalized rune
	// ranges it accepts (case folding expanded); nil for the others.
	ranges [][]rune
	// mark and stamp make a closure's visited set reusable without
	// clearing. An nfa is used by one goroutine.
	mark  []uint32
	stamp uint32
	stack []uint32
}

func newNFA(re *syntax.Regexp) (*nfa, error) {
	prog, err := syntax.Compile(re.Simplify())
	if err != nil {
		return nil, err
	}
	n := &nfa{prog: prog, ranges: make([][]rune, len(prog.Inst)), mark: make([]uint32, len(prog.Inst))}
	for i, in := range prog.Inst {
		switch in.Op {
		case syntax.InstRune:
			rs := append([]rune(nil), in.Rune...)
			// A one-rune InstRune is a literal and folds case when asked
			// (syntax.Inst.MatchRunePos); longer ones are explicit classes.
			if len(in.Rune) == 1 {
				r := in.Rune[0]
				rs = []rune{r, r}
				if syntax.Flags(in.Arg)&syntax.FoldCase != 0 {
					for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
						rs = append(rs, f, f)
					}
				}
			}
			n.ranges[i] = normalize(rs)
		case syntax.InstRune1:
			n.ranges[i] = []rune{in.Rune[0], in.Rune[0]}
		case syntax.InstRuneAny:
			n.ranges[i] = []rune{0, unicode.MaxRune}
		case syntax.InstRuneAnyNotNL:
			n.ranges[i] = []rune{0, '\n' - 1, '\n' + 1, unicode.MaxRune}
		}
	}
	return n, nil
}

// A position's context for empty-width assertions (^ $ \b \B and their
// multi-line forms) depends only on the class of the rune on each side.
const (
	edge    = iota // before the first rune or after the last
	word           // [0-9A-Za-z_]
	newline        // \n
	other          // every other rune
	classes
)

var (
	classRep    = [classes]rune{-1, 'a', '\n', ' '}
	wordRunes   = []rune{'0', '9', 'A', 'Z', '_', '_', 'a', 'z'}
	classRanges = [classes][]rune{
		nil,
		wordRunes,
		{'\n', '\n'},
		complement(normalize([]rune{'0', '9', 'A', 'Z', '_', '_', 'a', 'z', '\n', '\n'})),
	}
)

// closure appends to dst the consuming instructions reachable from pc
// without consuming, between a rune of class prev and one of class next,
// and reports whether a match is reachable (only meaningful when next is
// edge: a match must end the string).
func (n *nfa) closure(pc uint32, prev, next int, dst []uint32) ([]uint32, bool) {
	n.stamp++
	if n.stamp == 0 {
		clear(n.mark)
		n.stamp = 1
	}
	ctx := syntax.EmptyOpContext(classRep[prev], classRep[next])
	matched := false
	n.stack = append(n.stack[:0], pc)
	for len(n.stack) > 0 {
		pc := n.stack[len(n.stack)-1]
		n.stack = n.stack[:len(n.stack)-1]
		if n.mark[pc] == n.stamp {
			continue
		}
		n.mark[pc] = n.stamp
		in := &n.prog.Inst[pc]
		switch in.Op {
		case syntax.InstAlt, syntax.InstAltMatch:
			n.stack = append(n.stack, in.Arg, in.Out)
		case syntax.InstCapture, syntax.InstNop:
			n.stack = append(n.stack, in.Out)
		case syntax.InstEmptyWidth:
			if syntax.EmptyOp(in.Arg)&^ctx == 0 {
				n.stack = append(n.stack, in.Out)
			}
		case syntax.InstMatch:
			matched = true
		case syntax.InstFail:
		default:
			dst = append(dst, pc)
		}
	}
	return dst, matched
}

// maxStates bounds the product automaton one pair of rules may explore;
// a pair that needs more is "could not prove", never disjoint.
const maxStates = 1 << 17

const maxAutomata = 3

type productState struct {
	pc   [maxAutomata]uint32
	prev uint8
}

// intersection searches the product of the automata breadth first for a
// string all of them accept. It returns the shortest such string and true,
// or false when the languages are disjoint; an error (wrapping
// [ErrUndecidable]) when the search exceeds maxStates.
func intersection(ns []*nfa) (string, bool, error) {
	if len(ns) == 0 || len(ns) > maxAutomata {
		return "", false, fmt.Errorf("%w: %d automata", ErrUndecidable, len(ns))
	}
	var start productState
	for i, n := range ns {
		start.pc[i] = uint32(n.prog.Start)
	}
	start.prev = edge
	states := []productState{start}
	parent := []int32{-1}
	via := []rune{0}
	seen := map[productState]int32{start: 0}
	closures := make([][]uint32, len(ns))
	var scratch [maxAutomata + 1][]rune

	for head := 0; head < len(states); head++ {
		st := states[head]
		// Can every automaton stop here?
		all := true
		for i, n := range ns {
			var ok bool
			closures[i], ok = n.closure(st.pc[i], int(st.prev), edge, closures[i][:0])
			if !ok {
				all = false
				break
			}
		}
		if all {
			return witness(states, parent, via, int32(head)), true, nil
		}
		for next := word; next < classes; next++ {
			empty := false
			for i, n := range ns {
				closures[i], _ = n.closure(st.pc[i], int(st.prev), next, closures[i][:0])
				if len(closures[i]) == 0 {
					empty = true
					break
				}
			}
			if empty {
				continue
			}
			// Every combination of one consuming instruction per automaton
			// whose rune sets meet within the class is a transition.
			var pick [maxAutomata]uint32
			var walk func(i int, acc []rune) error
			walk = func(i int, acc []rune) error {
				if i == len(ns) {
					var ns2 productState
					for k := range ns {
						ns2.pc[k] = ns[k].prog.Inst[pick[k]].Out
					}
					ns2.prev = uint8(next)
					if _, dup := seen[ns2]; dup {
						return nil
					}
					if len(states) >= maxStates {
						return fmt.Errorf("%w: more than %d automaton states", ErrUndecidable, maxStates)
					}
					seen[ns2] = int32(len(states))
					states = append(states, ns2)
					parent = append(parent, int32(head))
					via = append(via, representative(acc))
					return nil
				}
				for _, pc := range closures[i] {
					scratch[i+1] = intersect(scratch[i+1], acc, ns[i].ranges[pc])
					if len(scratch[i+1]) == 0 {
						continue
					}
					pick[i] = pc
					if err := walk(i+1, scratch[i+1]); err != nil {
						return err
					}
				}
				return nil
			}
			if err := walk(0, classRanges[next]); err != nil {
				return "", false, err
			}
		}
	}
	return "", false, nil
}

func witness(states []productState, parent []int32, via []rune, at int32) string {
	var rs []rune
	for ; parent[at] >= 0; at = parent[at] {
		rs = append(rs, via[at])
	}
	for i, j := 0, len(rs)-1; i < j; i, j = i+1, j-1 {
		rs[i], rs[j] = rs[j], rs[i]
	}
	return string(rs)
}

// preferred are the runes a witness is written with when it may choose, so
// that it reads like a URL.
const preferred = "xabcdefghijklmnopqrstuvwyz0123456789-_~ABCDEFGHIJKLMNOPQRSTUVWXYZ"

// representative picks one rune of the non-empty normalized ranges rs: a
// preferred one, else the lowest printable, else the lowest valid one.
func representative(rs []rune) rune {
	for _, r := range preferred {
		if inRanges(rs, r) {
			return r
		}
	}
	first := rune(-1)
	for i := 0; i+1 < len(rs); i += 2 {
		for r := rs[i]; r <= rs[i+1] && r-rs[i] < 256; r++ {
			if !utf8.ValidRune(r) {
				continue
			}
			if unicode.IsPrint(r) {
				return r
			}
			if first < 0 {
				first = r
			}
		}
		if first < 0 && utf8.ValidRune(rs[i+1]) {
			first = rs[i+1]
		}
	}
	if first < 0 {
		return rs[0]
	}
	return first
}

func inRanges(rs []rune, r rune) bool {
	for i := 0; i+1 < len(rs); i += 2 {
		if r >= rs[i] && r <= rs[i+1] {
			return true
		}
	}
	return false
}

// niceShape is the language of URLs as a request would present them; the
// prover looks for a witness inside it first, so that one reads as a URL,
// and falls back to any string both rules match (requests carry whatever
// scheme and host their forwarding headers say).
var niceShape = mustParse(`(?s)^https?://[a-z0-9.\-]+(?::[0-9]+)?(?:/.*)?$`)

func mustParse(s string) *syntax.Regexp {
	re, err := syntax.Parse(s, syntax.Perl)
	if err != nil {
		panic(err)
	}
	return re
}

// printable renders a witness for a message: as is when every rune prints,
// else quoted.
func printable(s string) string {
	if strings.IndexFunc(s, func(r rune) bool { return !unicode.IsPrint(r) || r == ' ' }) >= 0 || s == "" {
		return fmt.Sprintf("%q", s)
	}
	return s
}
