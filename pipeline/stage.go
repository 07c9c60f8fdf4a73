package pipeline

import (
	"net/http"
)

// ErrNotResponsible is returned by an [Authenticator] that finds no
// credentials of its kind in the request: the next authenticator is tried.
const ErrNotResponsible Sentinel = "authenticator not responsible"

// Authenticator answers "who is this?". It fills s (Subject, Extra, ...) and
// returns nil, returns [ErrNotResponsible] when the request carries no
// credential of its kind, or returns an error (usually a 401 [Error]) that
// rejects the request. The first responsible authenticator decides.
type Authenticator interface {
	Authenticate(r *http.Request, s *Session) error
}

// Authorizer answers "may they?". A nil error allows the request; an error
// (usually a 403 [Error]) denies it.
type Authorizer interface {
	Authorize(r *http.Request, s *Session) error
}

// Mutator decides what the upstream learns, by adding to s.Header (and
// s.Cookies). It must not write to r.
type Mutator interface {
	Mutate(r *http.Request, s *Session) error
}

// AuthenticatorFunc adapts a function to [Authenticator], for handlers
// with no state of their own.
type AuthenticatorFunc func(r *http.Request, s *Session) error

// Authenticate calls f(r, s).
func (f AuthenticatorFunc) Authenticate(r *http.Request, s *Session) error { return f(r, s) }

// AuthorizerFunc adapts a function to [Authorizer].
type AuthorizerFunc func(r *http.Request, s *Session) error

// Authorize calls f(r, s).
func (f AuthorizerFunc) Authorize(r *http.Request, s *Session) error { return f(r, s) }

// MutatorFunc adapts a function to [Mutator].
type MutatorFunc func(r *http.Request, s *Session) error

// Mutate calls f(r, s).
func (f MutatorFunc) Mutate(r *http.Request, s *Session) error { return f(r, s) }

// ErrorHandler writes the response for a pipeline error it was chosen
// for. Which error handler answers is the rule's decision: the rule
// compiler reads each one's `when` list ([WhenKey]) and the rule picks the
// first whose conditions match (see [Whens]); the handler itself only
// answers.
type ErrorHandler interface {
	HandleError(w http.ResponseWriter, r *http.Request, err error)
}
