package rules

import (
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/dlclark/regexp2"
	"github.com/gobwas/glob"
)

// BacktrackTimeout bounds one match of a pattern that needs the
// backtracking engine (lookarounds, backreferences): past it the URL does
// not match. Oathkeeper (through ladon) uses the same engine with 250 ms.
const BacktrackTimeout = 250 * time.Millisecond

// Strategy is access_rules.matching_strategy.
type Strategy string

// The matching strategies. Both read match.url as literal text with the
// parts inside < > interpreted: as a regular expression (each part becomes
// a capture group) or as a glob whose separators are '.' and '/'.
const (
	Regexp Strategy = "regexp"
	Glob   Strategy = "glob"
)

// ParseStrategy validates a strategy name; "" is Oathkeeper's default,
// regexp.
func ParseStrategy(s string) (Strategy, error) {
	switch Strategy(s) {
	case "", Regexp:
		return Regexp, nil
	case Glob:
		return Glob, nil
	}
	return "", fmt.Errorf("unknown matching strategy %q (want regexp or glob)", s)
}

// pattern is a compiled match.url.
type pattern interface {
	// match reports whether the URL matches and returns its capture groups.
	match(u string) ([]string, bool)
}

// literalPrefix is the text of a pattern before its first < part: every
// matching URL starts with it, which is what the index keys on.
func literalPrefix(p string) string {
	if i := strings.IndexByte(p, '<'); i >= 0 {
		return p[:i]
	}
	return p
}

// delimited splits p into literal and pattern parts at the outermost < >,
// which may nest. Odd indexes of the result are the pattern parts.
func delimited(p string) ([]string, error) {
	var parts []string
	level, start := 0, 0
	for i := 0; i < len(p); i++ {
		switch p[i] {
		case '<':
			if level == 0 {
				parts = append(parts, p[start:i])
				start = i + 1
			}
			level++
		case '>':
			level--
			if level == 0 {
				parts = append(parts, p[start:i])
				start = i + 1
			} else if level < 0 {
				return nil, fmt.Errorf("unbalanced < > in %q", p)
			}
		}
	}
	if level != 0 {
		return nil, fmt.Errorf("unbalanced < > in %q", p)
	}
	return append(parts, p[start:]), nil
}

func compilePattern(s Strategy, p string) (pattern, error) {
	if strings.IndexByte(p, 0) >= 0 {
		// gobwas/glob reads a NUL as the end of the pattern, which would
		// then match URLs outside its literal prefix; no URL needs one.
		return nil, fmt.Errorf("NUL byte in %q", p)
	}
	parts, err := delimited(p)
	if err != nil {
		return nil, err
	}
	var b strings.Builder
	switch s {
	case Glob:
		for i, part := range parts {
			if i%2 == 0 {
				b.WriteString(glob.QuoteMeta(part))
			} else {
				b.WriteString(part)
			}
		}
		g, err := glob.Compile(b.String(), '.', '/')
		if err != nil {
			return nil, fmt.Errorf("invalid glob in %q: %v", p, err)
		}
		return globPattern{g: g, src: b.String()}, nil
	default:
		// Go's linear-time RE2 engine serves every pattern it accepts;
		// only a pattern RE2 refuses (a lookaround, a backreference) falls
		// back to regexp2, Oathkeeper's engine, with a match time limit.
		b.WriteByte('^')
		backtrack := false
		for i, part := range parts {
			if i%2 == 0 {
				b.WriteString(regexp.QuoteMeta(part))
				continue
			}
			// Each part must be a regular expression of its own: "<a)|(b>"
			// would otherwise close its group and turn the whole pattern
			// into an alternation that no longer starts with the literal
			// text before it.
			if _, err := regexp.Compile(part); err != nil {
				if _, err2 := regexp2.Compile(part, regexp2.RE2); err2 != nil {
					return nil, fmt.Errorf("invalid regular expression <%s> in %q: %v", part, p, err)
				}
				backtrack = true
			}
			b.WriteString("(" + part + ")")
		}
		b.WriteByte('$')
		if len(parts) == 1 {
			return literalPattern(p), nil
		}
		if backtrack {
			re, err := regexp2.Compile(b.String(), regexp2.RE2)
			if err != nil {
				return nil, fmt.Errorf("invalid regular expression in %q: %v", p, err)
			}
			re.MatchTimeout = BacktrackTimeout
			return backtrackPattern{re}, nil
		}
		re, err := regexp.Compile(b.String())
		if err != nil {
			return nil, fmt.Errorf("invalid regular expression in %q: %v", p, err)
		}
		return regexpPattern{re: re, seg: compileSegments(parts)}, nil
	}
}

// backtrackPattern is a regular expression RE2 refuses, run by regexp2. A
// match that errs (its time limit passed) is no match: the request is
// answered 404, never let through by a rule it did not match.
type backtrackPattern struct{ re *regexp2.Regexp }

func (r backtrackPattern) match(u string) ([]string, bool) {
	m, err := r.re.FindStringMatch(u)
	if err != nil || m == nil {
		return nil, false
	}
	gs := m.Groups()[1:]
	out := make([]string, len(gs))
	for i, g := range gs {
		out[i] = g.String()
	}
	return out, true
}

type literalPattern string

func (l literalPattern) match(u string) ([]string, bool) { return nil, string(l) == u }

// regexpPattern is a regular expression RE2 accepts. When the pattern has
// the shape [segments] serves, seg matches it without the engine, with the
// same result; re stays the pattern's definition (the overlap prover reads
// it).
type regexpPattern struct {
	re  *regexp.Regexp
	seg *segments
}

func (r regexpPattern) match(u string) ([]string, bool) {
	if r.seg != nil {
		return r.seg.match(u)
	}
	m := r.re.FindStringSubmatch(u)
	if m == nil {
		return nil, false
	}
	return m[1:], true
}

// globPattern keeps its glob source for the overlap prover.
type globPattern struct {
	g   glob.Glob
	src string
}

func (g globPattern) match(u string) ([]string, bool) { return nil, g.g.Match(u) }
