package rules

import "strings"

// segments matches a regexp pattern of the common shape — literal text
// and < > parts that are each a run of one character class — without the
// regular expression engine, with the same result: whether the URL
// matches and the same capture groups. [compileSegments] builds one only
// where the result cannot differ from the regexp's: every part's extent is
// forced, so there is exactly one way to match and no backtracking.
//
// The parts it serves:
//
//   - [^c]+ and [^c]* for one ASCII character c, when the literal text
//     after the part starts with c or the part ends the pattern. The
//     greedy run stops at the first c; the literal (or the end) must
//     follow there, since any shorter run would leave a byte other than c
//     where the literal needs c. The class matches every byte but c: a
//     multi-byte rune never contains an ASCII byte, and the regexp reads
//     an invalid byte as U+FFFD, which is not c either. It matches a
//     newline too (syntax.Perl sets ClassNL).
//   - .* and .+ as the last part, with no literal after it: the rest of
//     the URL, which must hold no newline (. does not match one without
//     the s flag; $ is the end of the text without the m flag).
type segments struct {
	// prefix is the literal text before the first part.
	prefix string
	parts  []segment
}

// segment is one < > part and the literal text after it.
type segment struct {
	// stop is the byte the part's run excludes ([^stop]); for a last
	// part .* or .+, it is '\n'.
	stop byte
	// min is the run's least length: 1 for +, 0 for *.
	min int
	// literal is the text after the part, up to the next part or the end.
	literal string
}

// compileSegments returns the matcher for the pattern split by
// [delimited] into parts (odd indexes the < > parts), or nil when the
// pattern has a part it does not serve or a part whose extent is not
// forced; the regexp then serves the pattern.
func compileSegments(parts []string) *segments {
	if len(parts) < 3 {
		return nil
	}
	s := &segments{prefix: parts[0], parts: make([]segment, 0, len(parts)/2)}
	for i := 1; i < len(parts); i += 2 {
		lit := parts[i+1]
		last := i+2 >= len(parts)
		seg, ok := classRun(parts[i])
		switch {
		case ok:
			// The run must end where the literal starts, or at the end.
			if lit == "" && !last || lit != "" && lit[0] != seg.stop {
				return nil
			}
		case last && lit == "" && (parts[i] == ".*" || parts[i] == ".+"):
			seg = segment{stop: '\n'}
			if parts[i] == ".+" {
				seg.min = 1
			}
		default:
			return nil
		}
		seg.literal = lit
		s.parts = append(s.parts, seg)
	}
	return s
}

// classRun reads a part [^c]+ or [^c]*, c one ASCII character that needs
// no escape in a class.
func classRun(p string) (segment, bool) {
	if len(p) != 5 || p[0] != '[' || p[1] != '^' || p[3] != ']' {
		return segment{}, false
	}
	c := p[2]
	if c < ' ' || c > '~' || strings.IndexByte(`\]^[-`, c) >= 0 {
		return segment{}, false
	}
	switch p[4] {
	case '+':
		return segment{stop: c, min: 1}, true
	case '*':
		return segment{stop: c, min: 0}, true
	}
	return segment{}, false
}

// match reports whether u matches and returns the parts' capture groups,
// as the regexp's FindStringSubmatch would (without the whole match).
func (s *segments) match(u string) ([]string, bool) {
	if !strings.HasPrefix(u, s.prefix) {
		return nil, false
	}
	rest := u[len(s.prefix):]
	// Check before allocating: most URLs a candidate rule is tried on do
	// not match it.
	r := rest
	for _, seg := range s.parts {
		n := strings.IndexByte(r, seg.stop)
		if n < 0 {
			n = len(r)
		}
		if n < seg.min || !strings.HasPrefix(r[n:], seg.literal) {
			return nil, false
		}
		r = r[n+len(seg.literal):]
	}
	if r != "" {
		return nil, false
	}
	groups := make([]string, len(s.parts))
	for i, seg := range s.parts {
		n := strings.IndexByte(rest, seg.stop)
		if n < 0 {
			n = len(rest)
		}
		groups[i] = rest[:n]
		rest = rest[n+len(seg.literal):]
	}
	return groups, true
}
