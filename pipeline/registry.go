package pipeline

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"reflect"
	"sort"
)

// Deps are the process-wide services a handler may use. They are built
// once from the configuration (internal/app) and handed to every factory;
// handlers keep what they need and never build these services themselves.
type Deps struct {
	// Log is the process logger (logrus, wired by the composition root
	// with logfmt.Slog); nil means slog.Default() ([Deps.Logger]).
	// Handlers never log credentials.
	Log *slog.Logger
	// Context ends when the process shuts down, or when a configuration
	// reload replaces the handlers; background work (refreshers, pollers)
	// stops with it.
	Context context.Context
	// HTTPClient sends every request a handler makes: session checks,
	// token introspection, key sets, policy documents, remote authorizers,
	// the hydrator. It is built once from the configuration's http_client
	// block (trusted CAs, connect timeout) and follows no redirects: a
	// redirect is an answer, never a hop that could carry forwarded
	// credentials elsewhere. Handlers that have always followed redirects
	// (document reads, session checks) use a copy that does, over the same
	// connections. Handlers bound each call themselves (their own timeout
	// keys) and never build a client of their own. Nil: a handler that
	// calls out cannot be enabled or built ([ErrNoHTTPClient]).
	HTTPClient *http.Client
	// Offline forbids network access while handlers are built (`rules
	// validate` without --online): a remote document (an http(s) key set)
	// is then neither fetched nor checked; local ones still are.
	Offline bool
	// Revocations says which sessions and subjects were revoked; session
	// caches evict their entries for those. Nil: no revocation service.
	Revocations RevocationView
}

// Logger returns d.Log, or slog.Default() when it is nil.
func (d Deps) Logger() *slog.Logger {
	if d.Log == nil {
		return slog.Default()
	}
	return d.Log
}

// ErrNoHTTPClient is returned by the factory of a handler that calls out
// when [Deps.HTTPClient] is nil.
const ErrNoHTTPClient Sentinel = "no HTTP client to call out with (Deps.HTTPClient is nil)"

// Client returns d.HTTPClient, or [ErrNoHTTPClient].
func (d Deps) Client() (*http.Client, error) {
	if d.HTTPClient == nil {
		return nil, ErrNoHTTPClient
	}
	return d.HTTPClient, nil
}

// RevocationView reports revoked sessions (by the identity provider's
// session id) and subjects. Implementations are safe for concurrent use
// and cheap: session caches ask on every hit.
type RevocationView interface {
	Revoked(sessionID, subject string) bool
}

// Kind is one of the four kinds of handler. Its methods give the names
// the configuration, the rules and the schemas use for it; [Kinds] lists
// them all.
type Kind uint8

// The kinds, in the order a rule runs them.
const (
	KindAuthenticator Kind = iota
	KindAuthorizer
	KindMutator
	KindErrorHandler
)

// Kinds lists every kind, in the order a rule runs them.
func Kinds() []Kind {
	return []Kind{KindAuthenticator, KindAuthorizer, KindMutator, KindErrorHandler}
}

// kindNames are the names of one kind.
type kindNames struct {
	noun       string // in messages: "error handler"
	configKey  string // the configuration block: "errors.handlers"
	ruleKey    string // the rule key listing them: "errors"
	schemaName string // the prefix of its schema definitions: "errorHandler"
}

var kindTable = [...]kindNames{
	KindAuthenticator: {"authenticator", "authenticators", "authenticators", "authenticator"},
	KindAuthorizer:    {"authorizer", "authorizers", "authorizer", "authorizer"},
	KindMutator:       {"mutator", "mutators", "mutators", "mutator"},
	KindErrorHandler:  {"error handler", "errors.handlers", "errors", "errorHandler"},
}

func (k Kind) names() kindNames {
	if int(k) < len(kindTable) {
		return kindTable[k]
	}
	return kindNames{noun: fmt.Sprintf("Kind(%d)", k)}
}

// String is the kind as messages name it: "authenticator", "error handler".
func (k Kind) String() string { return k.names().noun }

// ConfigKey is the configuration block of the kind's handlers, a dotted
// path: "authenticators", "errors.handlers".
func (k Kind) ConfigKey() string { return k.names().configKey }

// RuleKey is the key of a rule that names handlers of the kind:
// "authenticators", "authorizer" (one), "mutators", "errors".
func (k Kind) RuleKey() string { return k.names().ruleKey }

// SchemaName prefixes the kind's definitions in config.schema.json
// ("errorHandler.redirect").
func (k Kind) SchemaName() string { return k.names().schemaName }

// Factory makes a handler's [Builder] from its global config (the `config`
// key under authenticators.<name>, authorizers.<name>, ...). It runs once at
// start-up for each enabled handler. The global config may be partial: rules
// may supply the rest.
type Factory[T any] func(global json.RawMessage, deps Deps) (Builder[T], error)

// Builder makes the instance one rule uses from the rule's config. It runs
// when rules load, never per request, and returns an error naming the key
// for a config that does not decode or validate.
type Builder[T any] interface {
	Build(rule json.RawMessage) (T, error)
}

// BuilderFunc adapts a function to [Builder].
type BuilderFunc[T any] func(rule json.RawMessage) (T, error)

// Build calls f.
func (f BuilderFunc[T]) Build(rule json.RawMessage) (T, error) { return f(rule) }

// RuleBuilder makes the instance one rule uses from its config C: the
// rule's config merged over the global one ([MergeConfig]), decoded
// strictly and validated ([DecodeStrict]).
type RuleBuilder[C any, T any] interface {
	Build(c *C) (T, error)
}

// APIRouter is implemented by builders that serve endpoints on the API
// listener (the id_token mutator's /.well-known/jwks.json).
type APIRouter interface {
	APIRoutes() map[string]http.Handler
}

// Handler is one entry of a [Catalog]: a handler's kind, the name rules
// and the configuration call it by, the type its config decodes into, and
// its factory. Entries are made by [Typed] and [Shared], whose type
// parameters fix all of these at once.
type Handler struct {
	name    string
	kind    Kind
	config  reflect.Type
	factory any // Factory[T] for the kind's stage interface T
	err     error
}

// Name is the name rules and the configuration use.
func (h Handler) Name() string { return h.name }

// Kind is the handler's kind.
func (h Handler) Kind() Kind { return h.kind }

// Config is the struct type the handler's config decodes into.
func (h Handler) Config() reflect.Type { return h.config }

// Typed is the entry of a handler configured by a struct C whose rules
// share nothing: each rule's config, merged over the global one
// ([MergeConfig]), is decoded strictly into a fresh C ([DecodeStrict]) and
// handed to newFn. T, the stage interface newFn returns, is the kind.
func Typed[C any, T any](name string, newFn func(c *C, deps Deps) (T, error)) Handler {
	return entry[C, T](name, TypedFactory(newFn))
}

// TypedFactory is the [Factory] a [Typed] entry enables the handler with,
// for building one outside a catalog.
func TypedFactory[C any, T any](newFn func(c *C, deps Deps) (T, error)) Factory[T] {
	return func(global json.RawMessage, deps Deps) (Builder[T], error) {
		return BuilderFunc[T](func(rule json.RawMessage) (T, error) {
			var zero T
			c, err := ruleConfig[C](global, rule)
			if err != nil {
				return zero, err
			}
			return newFn(c, deps)
		}), nil
	}
}

// Shared is the entry of a handler whose rules share what it builds once
// from its global config (key set caches, policy stores, token caches).
// setup gets the global config decoded strictly over C's defaults but not
// validated, since rules may supply required keys, and returns the
// [RuleBuilder] that makes each rule's instance. A RuleBuilder that is an
// [APIRouter] serves its endpoints.
func Shared[C any, T any](name string, setup func(global *C, deps Deps) (RuleBuilder[C, T], error)) Handler {
	return entry[C, T](name, SharedFactory(setup))
}

// SharedFactory is the [Factory] a [Shared] entry enables the handler
// with: [GlobalConfig], then setup, then [Bind].
func SharedFactory[C any, T any](setup func(global *C, deps Deps) (RuleBuilder[C, T], error)) Factory[T] {
	return func(global json.RawMessage, deps Deps) (Builder[T], error) {
		g, err := GlobalConfig[C](global)
		if err != nil {
			return nil, err
		}
		rb, err := setup(g, deps)
		if err != nil {
			return nil, err
		}
		return Bind(global, rb), nil
	}
}

// GlobalConfig decodes a handler's global config strictly into a fresh C
// over its defaults ([Defaulter]) without validating it ([Validator]): a
// global config may leave required keys to the rules.
func GlobalConfig[C any](global json.RawMessage) (*C, error) {
	g := new(C)
	if err := decodeOnto(global, g); err != nil {
		return nil, err
	}
	return g, nil
}

// Bind returns the [Builder] that merges each rule's config over global
// ([MergeConfig]), decodes it strictly into a fresh C, validated
// ([DecodeStrict]), and hands it to rb. It serves rb's endpoints when rb
// is an [APIRouter].
func Bind[C any, T any](global json.RawMessage, rb RuleBuilder[C, T]) Builder[T] {
	return &sharedBuilder[C, T]{global: global, rb: rb}
}

// sharedBuilder is the [Builder] of [Bind].
type sharedBuilder[C any, T any] struct {
	global json.RawMessage
	rb     RuleBuilder[C, T]
}

func (b *sharedBuilder[C, T]) Build(rule json.RawMessage) (T, error) {
	c, err := ruleConfig[C](b.global, rule)
	if err != nil {
		var zero T
		return zero, err
	}
	return b.rb.Build(c)
}

// APIRoutes are the endpoints of the RuleBuilder, if it serves any.
func (b *sharedBuilder[C, T]) APIRoutes() map[string]http.Handler {
	if r, ok := b.rb.(APIRouter); ok {
		return r.APIRoutes()
	}
	return nil
}

// ruleConfig merges rule over global and decodes the result into a fresh
// C, validated.
func ruleConfig[C any](global, rule json.RawMessage) (*C, error) {
	merged, err := MergeConfig(global, rule)
	if err != nil {
		return nil, err
	}
	c := new(C)
	if err := DecodeStrict(merged, c); err != nil {
		return nil, err
	}
	return c, nil
}

// entry records the kind T stands for; an entry whose T is not one of the
// stage interfaces carries an error that [NewCatalog] returns.
func entry[C any, T any](name string, f Factory[T]) Handler {
	h := Handler{name: name, config: reflect.TypeFor[C](), factory: f}
	switch any((*T)(nil)).(type) {
	case *Authenticator:
		h.kind = KindAuthenticator
	case *Authorizer:
		h.kind = KindAuthorizer
	case *Mutator:
		h.kind = KindMutator
	case *ErrorHandler:
		h.kind = KindErrorHandler
	default:
		h.err = fmt.Errorf("handler %q: %s is not a stage interface", name, reflect.TypeFor[T]())
	}
	return h
}

// WhenKey is the key of an error handler's config that holds its `when`
// list ([When]). The rule compiler reads it, from the rule's config or else
// the global one ([Set.GlobalWhen]), and chooses among a rule's error
// handlers with it; the handlers' factories and config structs never see
// it.
const WhenKey = "when"

// Set is the handlers of one kind: all known ones by name, and the
// builders of those enabled.
type Set[T any] struct {
	kind    Kind
	known   map[string]Factory[T]
	enabled map[string]Builder[T]
	// whens holds the [WhenKey] value of each enabled error handler's
	// global config, cut off before the factory saw it.
	whens map[string]json.RawMessage
}

func newSet[T any](k Kind) *Set[T] {
	return &Set[T]{kind: k, known: map[string]Factory[T]{}, enabled: map[string]Builder[T]{}, whens: map[string]json.RawMessage{}}
}

// Kind is the set's kind.
func (s *Set[T]) Kind() Kind { return s.kind }

// Enable builds the named handler's [Builder] from its global config.
func (s *Set[T]) Enable(name string, global json.RawMessage, deps Deps) error {
	f, ok := s.known[name]
	if !ok {
		return fmt.Errorf("unknown %s %q (known: %v)", s.kind, name, s.Names())
	}
	var when json.RawMessage
	if s.kind == KindErrorHandler {
		rest, w, _, err := CutKey(global, WhenKey)
		if err != nil {
			return &HandlerError{Kind: s.kind, Name: name, Err: err}
		}
		global, when = rest, w
	}
	b, err := f(global, deps)
	if err != nil {
		return &HandlerError{Kind: s.kind, Name: name, Err: err}
	}
	s.enabled[name] = b
	s.whens[name] = when
	return nil
}

// GlobalWhen is the `when` list ([WhenKey]) of the named enabled error
// handler's global config, as written; nil when it has none.
func (s *Set[T]) GlobalWhen(name string) json.RawMessage { return s.whens[name] }

// CutKey returns the JSON object raw without key, and key's value (present
// reports whether raw had it, even as null). A raw that is empty, null or
// not an object has no keys: it is returned as it is, for strict decoding
// to judge.
func CutKey(raw json.RawMessage, key string) (rest, value json.RawMessage, present bool, err error) {
	trimmed := bytes.TrimSpace(raw)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return raw, nil, false, nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(trimmed, &m); err != nil {
		return nil, nil, false, err
	}
	value, present = m[key]
	if !present {
		return raw, nil, false, nil
	}
	delete(m, key)
	rest, err = json.Marshal(m)
	if err != nil {
		return nil, nil, false, err
	}
	return rest, value, true, nil
}

// Build makes the named handler's instance for one rule.
func (s *Set[T]) Build(name string, rule json.RawMessage) (T, error) {
	var zero T
	b, ok := s.enabled[name]
	if !ok {
		if _, known := s.known[name]; known {
			return zero, fmt.Errorf("%s %q is not enabled", s.kind, name)
		}
		return zero, fmt.Errorf("unknown %s %q (known: %v)", s.kind, name, s.Names())
	}
	h, err := b.Build(rule)
	if err != nil {
		return zero, &HandlerError{Kind: s.kind, Name: name, Err: err}
	}
	return h, nil
}

// Names lists the known handler names, sorted.
func (s *Set[T]) Names() []string {
	names := make([]string, 0, len(s.known))
	for n := range s.known {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Known reports whether the set has a handler of that name.
func (s *Set[T]) Known(name string) bool { _, ok := s.known[name]; return ok }

// Enabled reports whether the named handler is enabled.
func (s *Set[T]) Enabled(name string) bool { _, ok := s.enabled[name]; return ok }

func (s *Set[T]) apiRoutes(out map[string]http.Handler) {
	for _, b := range s.enabled {
		if r, ok := b.(APIRouter); ok {
			for p, h := range r.APIRoutes() {
				out[p] = h
			}
		}
	}
}

// kindSet is what a [Catalog] does with a set whatever its kind.
type kindSet interface {
	Enable(name string, global json.RawMessage, deps Deps) error
	Names() []string
	Known(name string) bool
	Enabled(name string) bool
	apiRoutes(out map[string]http.Handler)
}

// Catalog is every handler portcullis can run, by kind and name, and
// which of them are enabled. The typed sets serve the rule compiler; the
// methods taking a [Kind] serve code that loops over the kinds.
type Catalog struct {
	Authenticators *Set[Authenticator]
	Authorizers    *Set[Authorizer]
	Mutators       *Set[Mutator]
	ErrorHandlers  *Set[ErrorHandler]

	handlers []Handler
}

// NewCatalog returns a catalog of the handlers, none enabled. Two entries
// of one kind with the same name, or an entry not made by [Typed] or
// [Shared], are an error.
func NewCatalog(handlers []Handler) (*Catalog, error) {
	c := &Catalog{
		Authenticators: newSet[Authenticator](KindAuthenticator),
		Authorizers:    newSet[Authorizer](KindAuthorizer),
		Mutators:       newSet[Mutator](KindMutator),
		ErrorHandlers:  newSet[ErrorHandler](KindErrorHandler),
	}
	for _, h := range handlers {
		if h.err != nil {
			return nil, h.err
		}
		if h.factory == nil {
			return nil, errors.New("catalog entry not made by pipeline.Typed or pipeline.Shared")
		}
		if c.set(h.kind).Known(h.name) {
			return nil, fmt.Errorf("%s %q is listed twice", h.kind, h.name)
		}
		switch f := h.factory.(type) {
		case Factory[Authenticator]:
			c.Authenticators.known[h.name] = f
		case Factory[Authorizer]:
			c.Authorizers.known[h.name] = f
		case Factory[Mutator]:
			c.Mutators.known[h.name] = f
		case Factory[ErrorHandler]:
			c.ErrorHandlers.known[h.name] = f
		}
		c.handlers = append(c.handlers, h)
	}
	return c, nil
}

func (c *Catalog) set(k Kind) kindSet {
	switch k {
	case KindAuthenticator:
		return c.Authenticators
	case KindAuthorizer:
		return c.Authorizers
	case KindMutator:
		return c.Mutators
	default:
		return c.ErrorHandlers
	}
}

// Handlers lists the catalog's entries in the order they were given.
func (c *Catalog) Handlers() []Handler { return append([]Handler(nil), c.handlers...) }

// Names lists the known handlers of a kind, sorted.
func (c *Catalog) Names(k Kind) []string { return c.set(k).Names() }

// Known reports whether the catalog has a handler of that kind and name.
func (c *Catalog) Known(k Kind, name string) bool { return c.set(k).Known(name) }

// Enabled reports whether the handler of that kind and name is enabled.
func (c *Catalog) Enabled(k Kind, name string) bool { return c.set(k).Enabled(name) }

// Enable builds the named handler's [Builder] from its global config.
func (c *Catalog) Enable(k Kind, name string, global json.RawMessage, deps Deps) error {
	return c.set(k).Enable(name, global, deps)
}

// EnableAll enables every handler on an empty global config, as `rules
// validate` does without a configuration file. A handler that needs a
// global key does not enable; the errors of those are returned, joined
// (each a [*HandlerError]), and the others are enabled regardless.
func (c *Catalog) EnableAll(deps Deps) error {
	var errs []error
	for _, h := range c.handlers {
		if err := c.Enable(h.kind, h.name, nil, deps); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// APIRoutes collects the endpoints the enabled builders serve on the API
// listener.
func (c *Catalog) APIRoutes() map[string]http.Handler {
	out := map[string]http.Handler{}
	for _, k := range Kinds() {
		c.set(k).apiRoutes(out)
	}
	return out
}

// HandlerError is a handler that could not be enabled or built.
type HandlerError struct {
	Kind Kind
	Name string
	Err  error
}

func (e *HandlerError) Error() string { return fmt.Sprintf("%s %q: %v", e.Kind, e.Name, e.Err) }
func (e *HandlerError) Unwrap() error { return e.Err }

// ConfigSection is where the handler's global config lives in the
// configuration file: authenticators.NAME.config, errors.handlers.NAME.config.
func (e *HandlerError) ConfigSection() string {
	return e.Kind.ConfigKey() + "." + e.Name + ".config"
}

// MissingKeyError is a required config key that has no value, neither in
// the rule's config nor in the handler's global config.
type MissingKeyError struct {
	Key string // dotted, relative to the handler's config
}

func (e *MissingKeyError) Error() string { return fmt.Sprintf("key %q: required", e.Key) }

// Required returns the error for a required key without a value.
func Required(key string) error { return &MissingKeyError{Key: key} }
