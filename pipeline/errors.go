package pipeline

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// Error is an error that carries the HTTP status it becomes. Reason is safe
// to show to clients; Cause is for logs (and verbose error handlers) only and
// must never contain a credential.
//
// errors.Is(err, ErrUnauthorized) is true for every *Error with status 401,
// whatever its reason, so callers compare kinds, never strings. Every
// *Error is built where it is returned; none is shared, so a caller may set
// its Header.
type Error struct {
	Status int
	Reason string
	Cause  error
	// Header is added to the response (e.g. Retry-After).
	Header http.Header
}

// StatusKind is a class of [*Error]: an HTTP status, as a constant error
// value. errors.Is(err, k) is true for every *Error in err's chain whose
// status is k. A StatusKind's own text is the status text.
type StatusKind int

// The kinds handlers and front ends compare with errors.Is.
const (
	ErrBadRequest         StatusKind = http.StatusBadRequest
	ErrUnauthorized       StatusKind = http.StatusUnauthorized
	ErrForbidden          StatusKind = http.StatusForbidden
	ErrNotFound           StatusKind = http.StatusNotFound
	ErrInternal           StatusKind = http.StatusInternalServerError
	ErrBadGateway         StatusKind = http.StatusBadGateway
	ErrServiceUnavailable StatusKind = http.StatusServiceUnavailable
	ErrGatewayTimeout     StatusKind = http.StatusGatewayTimeout
)

func (k StatusKind) Error() string { return http.StatusText(int(k)) }

// Sentinel is an error that is a constant (a package's "no such thing"
// errors), so that no package holds a mutable error variable. errors.Is
// compares it by value, through any wrapping.
type Sentinel string

func (s Sentinel) Error() string { return string(s) }

// NewError returns an *Error with the status, a client-safe reason and an
// optional cause.
func NewError(status int, reason string, cause error) *Error {
	return &Error{Status: status, Reason: reason, Cause: cause}
}

// Errorf returns an *Error whose reason is formatted; a %w verb sets Cause.
func Errorf(status int, format string, args ...any) *Error {
	err := fmt.Errorf(format, args...)
	return &Error{Status: status, Reason: err.Error(), Cause: errors.Unwrap(err)}
}

// Unauthorized is a 401 with the reason.
func Unauthorized(reason string, cause error) *Error {
	return NewError(http.StatusUnauthorized, reason, cause)
}

// Forbidden is a 403 with the reason.
func Forbidden(reason string, cause error) *Error {
	return NewError(http.StatusForbidden, reason, cause)
}

// Unavailable is a 503 for a dependency (identity provider, remote
// authorizer) that cannot be reached, timed out or failed: the request is
// denied, never let through.
func Unavailable(reason string, cause error) *Error {
	return NewError(http.StatusServiceUnavailable, reason, cause)
}

func (e *Error) Error() string {
	msg := e.Reason
	if msg == "" {
		msg = http.StatusText(e.Status)
	}
	if e.Cause != nil {
		return msg + ": " + e.Cause.Error()
	}
	return msg
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Cause }

// Is reports whether target is the [StatusKind] of e's status, or an *Error of
// the same status.
func (e *Error) Is(target error) bool {
	switch t := target.(type) {
	case StatusKind:
		return int(t) == e.Status
	case *Error:
		return t.Status == e.Status
	}
	return false
}

// ID is the snake_case status name Oathkeeper uses in error handlers' `when`
// clauses ("unauthorized", "forbidden", "internal_server_error", ...).
func (e *Error) ID() string { return StatusID(e.Status) }

// StatusID is the snake_case name of an HTTP status.
func StatusID(status int) string {
	return strings.NewReplacer(" ", "_", "'", "", "-", "_").Replace(strings.ToLower(http.StatusText(status)))
}

// StatusOf returns the HTTP status err becomes: the status of the first
// *Error (or [StatusKind]) in its chain, 504 for a deadline, 500 otherwise.
func StatusOf(err error) int {
	var e *Error
	var k StatusKind
	switch {
	case err == nil:
		return http.StatusOK
	case errors.As(err, &e):
		return e.Status
	case errors.As(err, &k):
		return int(k)
	case errors.Is(err, context.DeadlineExceeded):
		return http.StatusGatewayTimeout
	default:
		return http.StatusInternalServerError
	}
}

// AsError returns err as an *Error, wrapping foreign errors as a 500 whose
// reason does not reveal the cause.
func AsError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	if k, ok := err.(StatusKind); ok {
		return &Error{Status: int(k)}
	}
	return &Error{Status: StatusOf(err), Cause: err}
}
