package rules

import (
	"net/url"
	"sort"
	"strings"
)

// MatchReport says why one rule does or does not match a request.
type MatchReport struct {
	// Rule is the rule's id.
	Rule string `json:"rule"`
	// Matches is true when both the method and match.url accept the request.
	Matches bool `json:"matches"`
	// Why is what decided: "matches", "match.url does not match" or
	// "method X is not in match.methods [...]".
	Why string `json:"why"`
}

// Explain reports, for every rule in load order, whether it matches method
// and u and why not, as [Set.Match] decides: exactly one report with
// Matches is a match. It walks every rule (not the prefix index), so it is
// meant for explaining a decision, not for the request path.
func (s *Set) Explain(method string, u *url.URL) []MatchReport {
	target := MatchURL(u)
	out := make([]MatchReport, 0, len(s.rules))
	for _, c := range s.rules {
		r := MatchReport{Rule: c.ID}
		_, urlOK := c.pattern.match(target)
		switch {
		case !urlOK:
			r.Why = "match.url does not match " + target
		case !c.methods[method]:
			ms := make([]string, 0, len(c.methods))
			for m := range c.methods {
				ms = append(ms, m)
			}
			sort.Strings(ms)
			r.Why = "method " + method + " is not in match.methods [" + strings.Join(ms, " ") + "]"
		default:
			r.Matches, r.Why = true, "matches"
		}
		out = append(out, r)
	}
	return out
}
