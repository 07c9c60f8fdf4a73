package pipeline

import (
	"errors"
	"net/http"
)

// ErrNotResponsible is returned by an [Authenticator] that finds no
// credentials of its kind in the request: the next authenticator is tried.
var ErrNotResponsible = errors.New("authenticator not responsible")

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

// ErrorHandler turns a pipeline error into a response.
type ErrorHandler interface {
	// Matches reports whether the handler's `when` conditions accept err for r.
	Matches(r *http.Request, err error) bool
	// HandleError writes the response for err.
	HandleError(w http.ResponseWriter, r *http.Request, err error)
}
