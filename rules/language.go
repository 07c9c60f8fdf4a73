package rules

import (
	"fmt"
	"regexp/syntax"
	"sort"
	"unicode"

	globsyntax "github.com/gobwas/glob/syntax"
	"github.com/gobwas/glob/syntax/ast"

	"github.com/portcullis-proxy/portcullis/pipeline"
)

// A pattern whose URL language the overlap prover can build implements
// languager. A pattern kind that does not (a matcher without an automaton,
// such as a backtracking engine's) is reported as "could not prove" by
// [Set.Overlaps], never as disjoint.
type languager interface {
	// language returns the pattern's URL language as a regular expression
	// tree that matches exactly the strings the pattern's match accepts,
	// read as a whole-string match.
	language() (*syntax.Regexp, error)
}

// ErrUndecidable marks a pair of rules the overlap prover could not decide;
// it wraps the reason.
const ErrUndecidable pipeline.Sentinel = "could not prove the rules disjoint"

func (l literalPattern) language() (*syntax.Regexp, error) {
	return literal(string(l)), nil
}

func (r regexpPattern) language() (*syntax.Regexp, error) {
	// regexp.Compile parses with syntax.Perl; the source already carries
	// the ^ and $ that compilePattern wrapped it in.
	return syntax.Parse(r.re.String(), syntax.Perl)
}

func (g globPattern) language() (*syntax.Regexp, error) {
	// The same parse gobwas/glob's Compile does, so the lexing of escapes,
	// ranges and alternatives is gobwas's own.
	tree, err := globsyntax.Parse(g.src)
	if err != nil {
		return nil, err
	}
	return globRegexp(tree)
}

// notSeparator is every rune but the glob separators '.' and '/': what *
// repeats and ? matches once (gobwas/glob's Any and Single).
var notSeparator = []rune{0, '.' - 1, '/' + 1, unicode.MaxRune}

// globRegexp translates a gobwas/glob syntax tree, compiled with '.' and
// '/' as separators, into the equivalent regular expression:
//
//   - any run of non-separators    [^./]*
//     **       any string                   (?s:.*)
//     ?        one non-separator            [^./]
//     [abc]    one of the list ([!abc]: any other rune, separators included)
//     [a-z]    one in the range ([!a-z]: any other rune, separators included)
//     {a,b}    an alternative
func globRegexp(n *ast.Node) (*syntax.Regexp, error) {
	switch n.Kind {
	case ast.KindNothing:
		return &syntax.Regexp{Op: syntax.OpEmptyMatch}, nil
	case ast.KindText:
		return literal(n.Value.(ast.Text).Text), nil
	case ast.KindAny:
		return &syntax.Regexp{Op: syntax.OpStar, Sub: []*syntax.Regexp{class(notSeparator)}}, nil
	case ast.KindSuper:
		return &syntax.Regexp{Op: syntax.OpStar, Sub: []*syntax.Regexp{class([]rune{0, unicode.MaxRune})}}, nil
	case ast.KindSingle:
		return class(notSeparator), nil
	case ast.KindList:
		l := n.Value.(ast.List)
		var rs []rune
		for _, c := range l.Chars {
			rs = append(rs, c, c)
		}
		rs = normalize(rs)
		if l.Not {
			rs = complement(rs)
		}
		return class(rs), nil
	case ast.KindRange:
		r := n.Value.(ast.Range)
		var rs []rune
		if r.Lo <= r.Hi {
			rs = []rune{r.Lo, r.Hi}
		}
		if r.Not {
			rs = complement(rs)
		}
		return class(rs), nil
	case ast.KindPattern, ast.KindAnyOf:
		op := syntax.OpConcat
		if n.Kind == ast.KindAnyOf {
			op = syntax.OpAlternate
		}
		re := &syntax.Regexp{Op: op}
		for _, c := range n.Children {
			sub, err := globRegexp(c)
			if err != nil {
				return nil, err
			}
			re.Sub = append(re.Sub, sub)
		}
		switch {
		case len(re.Sub) == 0 && op == syntax.OpConcat:
			return &syntax.Regexp{Op: syntax.OpEmptyMatch}, nil
		case len(re.Sub) == 0:
			return &syntax.Regexp{Op: syntax.OpNoMatch}, nil
		case len(re.Sub) == 1:
			return re.Sub[0], nil
		}
		return re, nil
	}
	return nil, fmt.Errorf("glob syntax node %v has no automaton", n.Kind)
}

func literal(s string) *syntax.Regexp {
	if s == "" {
		return &syntax.Regexp{Op: syntax.OpEmptyMatch}
	}
	return &syntax.Regexp{Op: syntax.OpLiteral, Rune: []rune(s)}
}

func class(rs []rune) *syntax.Regexp {
	if len(rs) == 0 {
		return &syntax.Regexp{Op: syntax.OpNoMatch}
	}
	return &syntax.Regexp{Op: syntax.OpCharClass, Rune: rs}
}

// normalize sorts rune ranges (pairs lo, hi) and merges those that touch.
func normalize(rs []rune) []rune {
	type pair struct{ lo, hi rune }
	ps := make([]pair, 0, len(rs)/2)
	for i := 0; i+1 < len(rs); i += 2 {
		ps = append(ps, pair{rs[i], rs[i+1]})
	}
	sort.Slice(ps, func(i, j int) bool { return ps[i].lo < ps[j].lo })
	out := rs[:0:0]
	for _, p := range ps {
		if n := len(out); n > 0 && p.lo <= out[n-1]+1 {
			if p.hi > out[n-1] {
				out[n-1] = p.hi
			}
			continue
		}
		out = append(out, p.lo, p.hi)
	}
	return out
}

// complement returns the runes not in the normalized ranges rs.
func complement(rs []rune) []rune {
	var out []rune
	next := rune(0)
	for i := 0; i+1 < len(rs); i += 2 {
		if rs[i] > next {
			out = append(out, next, rs[i]-1)
		}
		next = rs[i+1] + 1
	}
	if next <= unicode.MaxRune {
		out = append(out, next, unicode.MaxRune)
	}
	return out
}

// intersect returns the runes in both normalized ranges a and b, appended
// to dst[:0].
func intersect(dst, a, b []rune) []rune {
	dst = dst[:0]
	i, j := 0, 0
	for i+1 < len(a) && j+1 < len(b) {
		lo, hi := max(a[i], b[j]), min(a[i+1], b[j+1])
		if lo <= hi {
			dst = append(dst, lo, hi)
		}
		if a[i+1] < b[j+1] {
			i += 2
		} else {
			j += 2
		}
	}
	return dst
}
