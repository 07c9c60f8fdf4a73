package rules

import (
	"net/http"
	"net/url"
	"strings"
	"sync"

	"github.com/portcullis-proxy/portcullis/pipeline"
)

// Compiled is a rule ready to serve: its pattern compiled, its handlers
// built from their merged configs, its upstream parsed. It is immutable and
// shared by concurrent requests.
type Compiled struct {
	Sourced

	pattern pattern
	methods map[string]bool
	// methodBits are the standard methods of methods ([methodBit]), so
	// that matching tests a request's method without hashing it.
	methodBits     uint16
	authenticators []namedAuthenticator
	authorizer     pipeline.Authorizer
	mutators       []pipeline.Mutator
	errors         []errorHandler // the rule's own, then the fallback
	def            definition     // what a reload compares ([Set.Reevaluate])

	// UpstreamURL is the parsed upstream.url (nil when the rule has none,
	// which only the decision API can serve).
	UpstreamURL *url.URL
	// WebSocketPolicy is the rule's resolved tunnel policy.
	WebSocketPolicy WebSocketPolicy
	// Carriers are the credential carriers of all the rule's
	// authenticators (see [pipeline.CarrierReader]), computed once at
	// compile time. Run starts every session's Scrub with them, so they are
	// removed from the upstream request, the WebSocket handshake and the
	// error handlers' view whichever authenticator decides, or none.
	Carriers pipeline.Scrub
}

// MatchesPath reports whether the rule's pattern matches u with its path
// replaced by p (the decision API checks that a raw path and its decoded
// form select the same rule).
func (c *Compiled) MatchesPath(u *url.URL, p string) bool {
	v := *u
	v.Path = p
	_, ok := c.pattern.match(MatchURL(&v))
	return ok
}

// allows reports whether match.methods lists method: methods[method],
// read from methodBits for a standard method.
func (c *Compiled) allows(method string) bool {
	if b := methodBit(method); b != 0 {
		return c.methodBits&b != 0
	}
	return c.methods[method]
}

// standardMethods are the methods [Compiled.methodBits] holds: bit i is
// standardMethods[i], the most common first.
var standardMethods = [...]string{
	http.MethodGet, http.MethodPost, http.MethodHead, http.MethodPut, http.MethodPatch,
	http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace,
}

// methodBit is a standard method's bit in [Compiled.methodBits]; 0 for any
// other method (compared as written: "get" is not GET).
func methodBit(m string) uint16 {
	for i, s := range standardMethods {
		if m == s {
			return 1 << i
		}
	}
	return 0
}

type namedAuthenticator struct {
	name string
	pipeline.Authenticator
}

// ErrorHandler returns the handler for err: the first of the rule's error
// handlers whose `when` matches, else the first matching fallback handler.
func (c *Compiled) ErrorHandler(r *http.Request, err error) pipeline.ErrorHandler {
	return pickHandler(c.errors, r, err)
}

// Set is an immutable, compiled rule set. Lookups take no lock.
type Set struct {
	rules    []*Compiled
	byID     map[string]*Compiled
	index    prefixIndex
	fallback []errorHandler
	warnings Errors
}

// Warnings lists the problems the set loaded despite (file:line each): a
// rule whose handler could not be built, a rule without an authorizer or
// mutators. Each such rule fails every request it matches.
func (s *Set) Warnings() []error { return s.warnings }

var candidatePool = sync.Pool{New: func() any { s := make([]int, 0, 16); return &s }}

// ErrNoRule and ErrManyRules are the kinds of the two ways a URL can fail
// to select exactly one rule, for errors.Is: no rule (404) and several
// rules (500), Oathkeeper's statuses. Like every [pipeline.StatusKind]
// they compare by status. Match builds each refusal afresh, with
// Oathkeeper's messages (reasonNoRule, reasonManyRules).
const (
	ErrNoRule    = pipeline.ErrNotFound
	ErrManyRules = pipeline.ErrInternal
)

const (
	reasonNoRule    = "Requested url does not match any rules"
	reasonManyRules = "Expected exactly one rule but found multiple rules"
)

// noRule is [ErrNoRule] naming what was tried, so that a client behind a
// wrong X-Forwarded-Host or scheme sees which URL matched nothing. The
// target has no query (credentials may travel there).
func noRule(method, target string) error {
	return pipeline.NewError(http.StatusNotFound, reasonNoRule+": "+method+" "+target, nil)
}

// Match returns the single rule whose method list contains method and whose
// pattern matches u (scheme://host/path; the query is ignored), with the
// pattern's capture groups. No rule is [ErrNoRule] (404, errors.Is finds
// it; its reason names the method and URL tried); more than one is
// [ErrManyRules] (500), as in Oathkeeper.
func (s *Set) Match(method string, u *url.URL) (*Compiled, []string, error) {
	target := MatchURL(u)
	cp := candidatePool.Get().(*[]int)
	cands := s.index.candidates(target, (*cp)[:0])
	var found *Compiled
	var groups []string
	for _, i := range cands {
		c := s.rules[i]
		if !c.allows(method) {
			continue
		}
		g, ok := c.pattern.match(target)
		if !ok {
			continue
		}
		if found != nil {
			*cp = cands
			candidatePool.Put(cp)
			return nil, nil, pipeline.NewError(http.StatusInternalServerError, reasonManyRules, nil)
		}
		found, groups = c, g
	}
	*cp = cands
	candidatePool.Put(cp)
	if found == nil {
		return nil, nil, noRule(method, target)
	}
	return found, groups, nil
}

// MatchURL is the string rules are matched against: scheme://host/path.
func MatchURL(u *url.URL) string {
	var b strings.Builder
	b.Grow(len(u.Scheme) + 3 + len(u.Host) + len(u.Path))
	b.WriteString(u.Scheme)
	b.WriteString("://")
	b.WriteString(u.Host)
	b.WriteString(u.Path)
	return b.String()
}

// Rules returns the rules in load order.
func (s *Set) Rules() []*Compiled { return s.rules }

// Get returns the rule with the id.
func (s *Set) Get(id string) (*Compiled, bool) {
	c, ok := s.byID[id]
	return c, ok
}

// Len is the number of rules.
func (s *Set) Len() int { return len(s.rules) }

// FallbackHandler returns the error handler for an error that has no rule
// (no match, several matches): the first matching fallback handler.
func (s *Set) FallbackHandler(r *http.Request, err error) pipeline.ErrorHandler {
	return pickHandler(s.fallback, r, err)
}
