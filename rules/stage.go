package rules

import (
	"errors"
	"net/http"

	"github.com/portcullis-proxy/portcullis/pipeline"
)

// Stage names a kind of stage of a rule, in the order [Compiled.Run] runs
// them.
type Stage string

// The stages of a rule.
const (
	StageAuthenticator Stage = "authenticator"
	StageAuthorizer    Stage = "authorizer"
	StageMutator       Stage = "mutator"
)

// StageObserver is told about every stage [Compiled.RunObserved] runs, in
// order: the explain report and tracing implement it. StageStart is called
// before the handler runs; the function it returns is called once with the
// handler's result (for an authenticator, [pipeline.ErrNotResponsible]
// when it found no credential of its kind). Implementations must not keep
// r or s past the call.
type StageObserver interface {
	StageStart(stage Stage, handler string, r *http.Request, s *pipeline.Session) (done func(err error))
}

// StageError is the error [Compiled.Run] returns for a denial: the stage and
// handler that refused, and the handler's error (whose status and reason
// stay reachable through errors.As). Handler is "" when no authenticator
// was responsible for the request. Its message is the handler's, so what a
// client is shown does not change.
type StageError struct {
	Stage   Stage
	Handler string
	Err     error
}

func (e *StageError) Error() string { return e.Err.Error() }

// Unwrap returns the handler's error.
func (e *StageError) Unwrap() error { return e.Err }

// ErrNoAuthenticatorResponsible is the cause of the 401 a rule answers when
// every authenticator found no credential of its kind.
const ErrNoAuthenticatorResponsible pipeline.Sentinel = "no authenticator was responsible for the request"

// Run passes the request through the rule's stages and fills s:
// authenticators in order (one that is not responsible passes to the next,
// the first responsible one decides, none responsible is a 401), then the
// authorizer, then every mutator. A nil error means the request is allowed;
// a denial is a [*StageError].
func (c *Compiled) Run(r *http.Request, s *pipeline.Session) error {
	return c.RunObserved(r, s, nil)
}

// RunObserved is [Compiled.Run] telling o about each stage; a nil o costs
// nothing.
func (c *Compiled) RunObserved(r *http.Request, s *pipeline.Session, o StageObserver) error {
	s.Scrub = c.Carriers.Merge(s.Scrub)
	authenticated := false
	for _, a := range c.authenticators {
		done := start(o, StageAuthenticator, a.name, r, s)
		err := a.Authenticate(r, s)
		if done != nil {
			done(err)
		}
		if errors.Is(err, pipeline.ErrNotResponsible) {
			continue
		}
		if err != nil {
			return &StageError{Stage: StageAuthenticator, Handler: a.name, Err: err}
		}
		if s.Authenticator == "" {
			s.Authenticator = a.name
		}
		authenticated = true
		break
	}
	if !authenticated {
		return &StageError{Stage: StageAuthenticator, Err: pipeline.Unauthorized("Access credentials are invalid", ErrNoAuthenticatorResponsible)}
	}
	name := c.Rule.Authorizer.Handler
	done := start(o, StageAuthorizer, name, r, s)
	err := c.authorizer.Authorize(r, s)
	if done != nil {
		done(err)
	}
	if err != nil {
		return &StageError{Stage: StageAuthorizer, Handler: name, Err: err}
	}
	for i, m := range c.mutators {
		// A rule loaded without mutators runs one that always fails
		// (Oathkeeper's 500); it has no name of its own.
		name := ""
		if i < len(c.Rule.Mutators) {
			name = c.Rule.Mutators[i].Handler
		}
		done := start(o, StageMutator, name, r, s)
		err := m.Mutate(r, s)
		if done != nil {
			done(err)
		}
		if err != nil {
			return &StageError{Stage: StageMutator, Handler: name, Err: err}
		}
	}
	return nil
}

// start tells o (when set) that a stage begins and returns its done
// function (nil when o is nil).
func start(o StageObserver, stage Stage, name string, r *http.Request, s *pipeline.Session) func(error) {
	if o == nil {
		return nil
	}
	return o.StageStart(stage, name, r, s)
}
