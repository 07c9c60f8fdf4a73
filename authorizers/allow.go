package authorizers

import (
	"net/http"

	"github.com/portcullis-proxy/portcullis/pipeline"
)

// AllowConfig has no keys.
type AllowConfig struct{}

// NewAllow builds the `allow` authorizer, which allows every request.
func NewAllow(*AllowConfig, pipeline.Deps) (pipeline.Authorizer, error) {
	return pipeline.AuthorizerFunc(func(*http.Request, *pipeline.Session) error { return nil }), nil
}
