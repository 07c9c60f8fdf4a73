package authenticators

import (
	"net/http"

	"github.com/portcullis-proxy/portcullis/pipeline"
)

// UnauthorizedConfig has no keys.
type UnauthorizedConfig struct{}

// NewUnauthorized builds the `unauthorized` authenticator: it is always
// responsible and rejects every request with 401. Put it last to end a list
// of authenticators explicitly.
func NewUnauthorized(*UnauthorizedConfig, pipeline.Deps) (pipeline.Authenticator, error) {
	return pipeline.AuthenticatorFunc(func(*http.Request, *pipeline.Session) error {
		return pipeline.Unauthorized("Access credentials are invalid", nil)
	}), nil
}
