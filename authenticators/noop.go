package authenticators

import (
	"net/http"

	"github.com/portcullis-proxy/portcullis/pipeline"
)

// NoopConfig has no keys.
type NoopConfig struct{}

// NewNoop builds the `noop` authenticator: it is always responsible and
// admits the request with an empty subject. Use it only for rules whose
// upstream is public.
func NewNoop(*NoopConfig, pipeline.Deps) (pipeline.Authenticator, error) {
	return pipeline.AuthenticatorFunc(func(*http.Request, *pipeline.Session) error { return nil }), nil
}
