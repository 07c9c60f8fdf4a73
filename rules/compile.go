package rules

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/portcullis-proxy/portcullis/pipeline"
)

// Compiler turns parsed rules into a [Set]. It holds what every rule set of
// a process shares: the handler catalog, the matching strategy, the fallback
// error handlers and the default WebSocket policy.
type Compiler struct {
	Catalog  *pipeline.Catalog
	Strategy Strategy
	// Fallback lists errors.fallback by name; empty means ["json"].
	Fallback []string
	// WebSocketDefaults is the resolved top-level websocket block.
	WebSocketDefaults WebSocketPolicy
	// GlobalConfig returns the global config of an enabled handler (the
	// `config` under authenticators.NAME, authorizers.NAME, ...) by its
	// kind and name; nil for none. It is part of each rule's definition,
	// so that a reload that changes a handler's global config changes
	// every rule using it (see [Set.Reevaluate]). A nil GlobalConfig
	// compares rules by their own config alone.
	GlobalConfig func(k pipeline.Kind, name string) json.RawMessage
	// Strict turns every load-time warning into an error. Serving is
	// lenient where Oathkeeper is (a rule whose handler cannot be built
	// loads, with a warning, and fails closed on every request it
	// matches); `rules validate` is strict.
	Strict bool
}

var validMethods = map[string]bool{
	http.MethodGet: true, http.MethodHead: true, http.MethodPost: true, http.MethodPut: true,
	http.MethodPatch: true, http.MethodDelete: true, http.MethodConnect: true,
	http.MethodOptions: true, http.MethodTrace: true,
}

// Compile checks and builds every rule. It reports every problem it finds,
// each as file:line, and returns a nil set when there is any: a rule set is
// accepted whole or not at all. Problems Oathkeeper tolerates at load (see
// Strict) are kept as the set's Warnings instead.
func (c *Compiler) Compile(rs []Sourced) (*Set, error) {
	var errs Errors
	set := &Set{byID: map[string]*Compiled{}}

	fallback, err := c.fallbackHandlers()
	if err != nil {
		return nil, err
	}
	set.fallback = fallback

	firstPos := map[string]string{}
	for _, r := range rs {
		if prev, dup := firstPos[r.ID]; dup && r.ID != "" {
			errs = append(errs, &PosError{File: r.File, Line: r.LineOf("id"), Err: fmt.Errorf("duplicate rule id %q (first defined at %s)", r.ID, prev)})
			continue
		}
		firstPos[r.ID] = r.Pos()
		cr, rerrs, warns := c.compileRule(r, fallback)
		set.warnings = append(set.warnings, warns...)
		if len(rerrs) > 0 {
			errs = append(errs, rerrs...)
			continue
		}
		set.byID[r.ID] = cr
		set.index.insert(literalPrefix(r.Match.URL), len(set.rules))
		set.rules = append(set.rules, cr)
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return set, nil
}

func (c *Compiler) fallbackHandlers() ([]errorHandler, error) {
	names := c.Fallback
	if len(names) == 0 {
		names = []string{"json"}
	}
	var out []errorHandler
	for _, n := range names {
		h, err := c.errorHandler(n, nil)
		if err != nil {
			return nil, fmt.Errorf("errors.fallback: %w", err)
		}
		out = append(out, h)
	}
	return out, nil
}

func (c *Compiler) compileRule(r Sourced, fallback []errorHandler) (*Compiled, Errors, Errors) {
	var errs, warns Errors
	fail := func(line int, format string, args ...any) {
		errs = append(errs, &PosError{File: r.File, Line: line, Err: fmt.Errorf("rule %q: "+format, append([]any{r.ID}, args...)...)})
	}
	// warn records a problem Oathkeeper loads anyway; Strict makes it an
	// error. failsClosed says the rule then answers 500 (said in the
	// warning only: under Strict the rule does not load at all).
	warnRule := func(failsClosed bool, line int, format string, args ...any) {
		if c.Strict {
			fail(line, format, args...)
			return
		}
		if failsClosed {
			format += "; every request the rule matches is answered 500"
		}
		warns = append(warns, &PosError{File: r.File, Line: line, Err: fmt.Errorf("rule %q: "+format, append([]any{r.ID}, args...)...)})
	}
	warn := func(line int, format string, args ...any) { warnRule(false, line, format, args...) }
	warn500 := func(line int, format string, args ...any) { warnRule(true, line, format, args...) }
	cr := &Compiled{Sourced: r, methods: map[string]bool{}}

	if strings.TrimSpace(r.ID) == "" {
		errs = append(errs, &PosError{File: r.File, Line: r.Line, Err: errors.New("rule has no id")})
	}
	if r.Match.URL == "" {
		fail(r.LineOf("match"), "match.url is required")
	} else if p, err := compilePattern(c.Strategy, r.Match.URL); err != nil {
		fail(r.LineOf("match", "url"), "match.url: %v", err)
	} else {
		cr.pattern = p
	}
	if len(r.Match.Methods) == 0 {
		fail(r.LineOf("match"), "match.methods must list at least one method")
	}
	for i, m := range r.Match.Methods {
		// Oathkeeper compares methods as written: a custom method
		// (methods: [CUSTOM]) is a method like any other. One that is not
		// an HTTP token can never match a request.
		switch {
		case validMethods[m]:
		case !isToken(m):
			warn(r.LineOf("match", "methods", strconv.Itoa(i)), "match.methods: %q is not an HTTP method token; no request can match it", m)
		case validMethods[strings.ToUpper(m)]:
			warn(r.LineOf("match", "methods", strconv.Itoa(i)), "match.methods: %q is not an HTTP method (methods are upper case); %s requests do not match it", m, strings.ToUpper(m))
		}
		cr.methods[m] = true
		cr.methodBits |= methodBit(m)
	}

	// A handler that cannot be built loads as a stage that fails every
	// request (500, as in Oathkeeper), with a warning.
	broken := func(err error) failedStage {
		return newFailedStage(http.StatusInternalServerError, "The rule's pipeline is misconfigured", err)
	}
	if len(r.Authenticators) == 0 {
		warn500(r.Line, "no authenticators")
		cr.authenticators = append(cr.authenticators, namedAuthenticator{name: "", Authenticator: broken(errors.New("no authentication handler was set in the rule"))})
	}
	for i, h := range r.Authenticators {
		a, err := c.Catalog.Authenticators.Build(h.Handler, h.Config)
		if err != nil {
			warn500(r.LineOf("authenticators", strconv.Itoa(i)), "authenticators[%d]: %w", i, err)
			a = broken(err)
		}
		cr.authenticators = append(cr.authenticators, namedAuthenticator{name: h.Handler, Authenticator: a})
		if cr2, ok := a.(pipeline.CarrierReader); ok {
			cr.Carriers = cr.Carriers.Merge(cr2.Carriers())
		}
	}
	if r.Authorizer.Handler == "" {
		warn500(r.Line, "no authorizer")
		cr.authorizer = broken(errors.New("no authorization handler was set in the rule"))
	} else if a, err := c.Catalog.Authorizers.Build(r.Authorizer.Handler, r.Authorizer.Config); err != nil {
		warn500(r.LineOf("authorizer"), "authorizer: %w", err)
		cr.authorizer = broken(err)
	} else {
		cr.authorizer = a
	}
	if len(r.Mutators) == 0 {
		warn500(r.Line, "no mutators (use noop to forward the request unchanged)")
		cr.mutators = append(cr.mutators, broken(errors.New("no mutation handler was set in the rule")))
	}
	for i, h := range r.Mutators {
		m, err := c.Catalog.Mutators.Build(h.Handler, h.Config)
		if err != nil {
			warn500(r.LineOf("mutators", strconv.Itoa(i)), "mutators[%d]: %w", i, err)
			m = broken(err)
		}
		cr.mutators = append(cr.mutators, m)
	}
	for i, h := range r.Errors {
		eh, err := c.errorHandler(h.Handler, h.Config)
		if err != nil {
			fail(r.LineOf("errors", strconv.Itoa(i)), "errors[%d]: %w", i, err)
			continue
		}
		cr.errors = append(cr.errors, eh)
	}
	cr.errors = append(cr.errors, fallback...)

	if r.Upstream.URL != "" {
		u, err := url.Parse(r.Upstream.URL)
		switch {
		case err != nil:
			fail(r.LineOf("upstream", "url"), "upstream.url: %v", err)
		case u.Scheme != "http" && u.Scheme != "https" && u.Scheme != "ws" && u.Scheme != "wss":
			fail(r.LineOf("upstream", "url"), "upstream.url: scheme must be http, https, ws or wss, got %q", u.Scheme)
		case u.Host == "":
			fail(r.LineOf("upstream", "url"), "upstream.url: no host in %q", r.Upstream.URL)
		default:
			cr.UpstreamURL = u
		}
	}
	policy, err := r.WebSocket.Apply(c.WebSocketDefaults)
	var ke *pipeline.KeyError
	switch {
	case errors.As(err, &ke):
		path := append([]string{"websocket"}, ke.Path...)
		fail(r.LineOf(path...), "%s: %v", pipeline.FormatPath(path), ke.Err)
	case err != nil:
		fail(r.LineOf("websocket"), "%v", err)
	}
	cr.WebSocketPolicy = policy.resolveReauthorize(r.Authorizer.Handler)
	cr.def = c.definitionOf(r.Rule)
	return cr, errs, warns
}

// isToken reports whether s is an HTTP token (RFC 9110 §5.6.2), the syntax
// of a method.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}
