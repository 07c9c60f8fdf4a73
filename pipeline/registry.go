package pipeline

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"sort"
)

// Deps are the process-wide services a handler may use.
type Deps struct {
	// Log is the process logger (logrus, wired by the composition root
	// with logfmt.Slog); nil means slog.Default(). Handlers never log
	// credentials.
	Log *slog.Logger
	// Context ends when the process shuts down, or when a configuration
	// reload replaces the handlers; background work (refreshers, pollers)
	// stops with it.
	Context context.Context
	// LeakSensitiveValues mirrors log.leak_sensitive_values.
	LeakSensitiveValues bool
	// Offline forbids network access while handlers are built (`rules
	// validate` without --online): a remote document (an http(s) key set)
	// is then neither fetched nor checked; local ones still are.
	Offline bool
	// Revocations says which sessions and subjects were revoked; session
	// caches evict their entries for those. Nil: no revocation service.
	Revocations RevocationView
}

// RevocationView reports revoked sessions (by the identity provider's
// session id) and subjects. Implementations are safe for concurrent use
// and cheap: session caches ask on every hit.
type RevocationView interface {
	Revoked(sessionID, subject string) bool
}

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

// Typed returns a [Factory] for handlers configured by a struct C: the rule's
// config is merged over the global one ([MergeConfig]), decoded strictly into
// a fresh C ([DecodeStrict]) and handed to newFn.
func Typed[C any, T any](newFn func(c *C, deps Deps) (T, error)) Factory[T] {
	return func(global json.RawMessage, deps Deps) (Builder[T], error) {
		return BuilderFunc[T](func(rule json.RawMessage) (T, error) {
			var zero T
			merged, err := MergeConfig(global, rule)
			if err != nil {
				return zero, err
			}
			c := new(C)
			if err := DecodeStrict(merged, c); err != nil {
				return zero, err
			}
			return newFn(c, deps)
		}), nil
	}
}

// APIRouter is implemented by builders that serve endpoints on the API
// listener (the id_token mutator's /.well-known/jwks.json).
type APIRouter interface {
	APIRoutes() map[string]http.Handler
}

// Set is one kind of handler: all known names, and the builders of the
// enabled ones.
type Set[T any] struct {
	Kind    string // "authenticator", "authorizer", "mutator", "error handler"
	Known   map[string]Factory[T]
	Enabled map[string]Builder[T]
}

// NewSet returns a set of the known factories, none enabled yet.
func NewSet[T any](kind string, known map[string]Factory[T]) *Set[T] {
	return &Set[T]{Kind: kind, Known: known, Enabled: map[string]Builder[T]{}}
}

// Enable builds the named handler's [Builder] from its global config.
func (s *Set[T]) Enable(name string, global json.RawMessage, deps Deps) error {
	f, ok := s.Known[name]
	if !ok {
		return fmt.Errorf("unknown %s %q (known: %v)", s.Kind, name, s.Names())
	}
	b, err := f(global, deps)
	if err != nil {
		return &HandlerError{Kind: s.Kind, Name: name, Err: err}
	}
	s.Enabled[name] = b
	return nil
}

// Build makes the named handler's instance for one rule.
func (s *Set[T]) Build(name string, rule json.RawMessage) (T, error) {
	var zero T
	b, ok := s.Enabled[name]
	if !ok {
		if _, known := s.Known[name]; known {
			return zero, fmt.Errorf("%s %q is not enabled", s.Kind, name)
		}
		return zero, fmt.Errorf("unknown %s %q (known: %v)", s.Kind, name, s.Names())
	}
	h, err := b.Build(rule)
	if err != nil {
		return zero, &HandlerError{Kind: s.Kind, Name: name, Err: err}
	}
	return h, nil
}

// Names lists the known handler names, sorted.
func (s *Set[T]) Names() []string {
	names := make([]string, 0, len(s.Known))
	for n := range s.Known {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Catalog is every kind of handler portcullis can run.
type Catalog struct {
	Authenticators *Set[Authenticator]
	Authorizers    *Set[Authorizer]
	Mutators       *Set[Mutator]
	ErrorHandlers  *Set[ErrorHandler]
}

// APIRoutes collects the endpoints the enabled builders serve on the API
// listener.
func (c *Catalog) APIRoutes() map[string]http.Handler {
	out := map[string]http.Handler{}
	collect := func(b any) {
		if r, ok := b.(APIRouter); ok {
			for p, h := range r.APIRoutes() {
				out[p] = h
			}
		}
	}
	for _, b := range c.Authenticators.Enabled {
		collect(b)
	}
	for _, b := range c.Authorizers.Enabled {
		collect(b)
	}
	for _, b := range c.Mutators.Enabled {
		collect(b)
	}
	return out
}

// HandlerError is a handler that could not be enabled or built; Kind is
// the Set's kind ("authenticator", …) and Name the handler's name.
type HandlerError struct {
	Kind, Name string
	Err        error
}

func (e *HandlerError) Error() string { return fmt.Sprintf("%s %q: %v", e.Kind, e.Name, e.Err) }
func (e *HandlerError) Unwrap() error { return e.Err }

// ConfigSection is where the handler's global config lives in the
// configuration file: authenticators.NAME.config, errors.handlers.NAME.config.
func (e *HandlerError) ConfigSection() string {
	switch e.Kind {
	case "error handler":
		return "errors.handlers." + e.Name + ".config"
	default:
		return e.Kind + "s." + e.Name + ".config"
	}
}

// MissingKeyError is a required config key that has no value, neither in
// the rule's config nor in the handler's global config.
type MissingKeyError struct {
	Key string // dotted, relative to the handler's config
}

func (e *MissingKeyError) Error() string { return fmt.Sprintf("key %q: required", e.Key) }

// Required returns the error for a required key without a value.
func Required(key string) error { return &MissingKeyError{Key: key} }
