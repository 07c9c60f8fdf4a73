package authorizers

import (
	"net/http"

	"github.com/portcullis-proxy/portcullis/pipeline"
)

// DenyConfig has no keys.
type DenyConfig struct{}

// NewDeny builds the `deny` authorizer, which denies every request with 403.
func NewDeny(*DenyConfig, pipeline.Deps) (pipeline.Authorizer, error) {
	return pipeline.AuthorizerFunc(func(*http.Request, *pipeline.Session) error {
		return pipeline.Forbidden("Access is forbidden", nil)
	}), nil
}
