package rules

import (
	"net/http"

	"github.com/portcullis-proxy/portcullis/pipeline"
)

// failedStage stands in for a handler that could not be built when the
// rule loaded: a handler that is not enabled or not known, a config that
// does not decode or validate, an authorizer or mutator list that is
// missing. Oathkeeper loads such a rule and fails every request it matches;
// so does portcullis (fail closed), after warning at load. `rules validate`
// (Compiler.Strict) reports the same problem as an error instead.
type failedStage struct{ err *pipeline.Error }

var (
	_ pipeline.Authenticator = failedStage{}
	_ pipeline.Authorizer    = failedStage{}
	_ pipeline.Mutator       = failedStage{}
)

// newFailedStage fails with status and a client-safe reason; cause is for
// the log only.
func newFailedStage(status int, reason string, cause error) failedStage {
	return failedStage{err: pipeline.NewError(status, reason, cause)}
}

func (f failedStage) Authenticate(*http.Request, *pipeline.Session) error { return f.err }
func (f failedStage) Authorize(*http.Request, *pipeline.Session) error    { return f.err }
func (f failedStage) Mutate(*http.Request, *pipeline.Session) error       { return f.err }
