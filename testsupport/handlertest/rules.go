package handlertest

import (
	"fmt"
	"strings"
)

// Rule is an access rule as a test writes one: which requests it matches
// and the handlers that run for them. Zero fields take the defaults given
// beside them. [Rule.YAML] writes it the way the access-rules documents in
// docs/ are written, one key a line, so a parse error's line number in a
// test names the same key as in a hand-written file: line 1 of a rule is
// its id, line 2 its match, line 3 its authenticators.
//
// A handler is named by its name ("anonymous"), or by its name, a colon
// and its rule-level config as a YAML flow mapping
// ("header: {headers: {X-Rule: public}}").
type Rule struct {
	ID             string
	URL            string   // match.url, a pattern of the rule set's strategy
	Methods        []string // match.methods; default GET
	Authenticators []string // tried in order; default anonymous
	Authorizer     string   // default allow
	Mutators       []string // default noop
	Upstream       string   // upstream.url; "": the rule has no upstream key
	// More is further keys of the rule, each a YAML line without the
	// rule's indentation ("errors: [{handler: json}]"), written after the
	// others.
	More []string
}

// YAML is r as one item of an access-rules document, ending in a newline.
func (r Rule) YAML() string {
	methods := r.Methods
	if len(methods) == 0 {
		methods = []string{"GET"}
	}
	authn := r.Authenticators
	if len(authn) == 0 {
		authn = []string{"anonymous"}
	}
	authz := r.Authorizer
	if authz == "" {
		authz = "allow"
	}
	mutators := r.Mutators
	if len(mutators) == 0 {
		mutators = []string{"noop"}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "- id: %s\n", r.ID)
	fmt.Fprintf(&b, "  match: {url: %q, methods: [%s]}\n", r.URL, strings.Join(methods, ", "))
	fmt.Fprintf(&b, "  authenticators: %s\n", handlerList(authn))
	fmt.Fprintf(&b, "  authorizer: %s\n", handlerRef(authz))
	fmt.Fprintf(&b, "  mutators: %s\n", handlerList(mutators))
	if r.Upstream != "" {
		fmt.Fprintf(&b, "  upstream: {url: %q}\n", r.Upstream)
	}
	for _, line := range r.More {
		fmt.Fprintf(&b, "  %s\n", line)
	}
	return b.String()
}

// Rules is the access-rules document holding rs in order.
func Rules(rs ...Rule) string {
	var b strings.Builder
	for _, r := range rs {
		b.WriteString(r.YAML())
	}
	return b.String()
}

// handlerList is the YAML flow sequence of the handlers named by refs.
func handlerList(refs []string) string {
	items := make([]string, len(refs))
	for i, ref := range refs {
		items[i] = handlerRef(ref)
	}
	return "[" + strings.Join(items, ", ") + "]"
}

// handlerRef is the YAML flow mapping of the handler named by ref, a name
// optionally followed by ": " and its config.
func handlerRef(ref string) string {
	name, config, ok := strings.Cut(ref, ":")
	if !ok {
		return "{handler: " + ref + "}"
	}
	return "{handler: " + name + ", config: " + strings.TrimSpace(config) + "}"
}
