package mutators

import (
	"net/http"

	"github.com/portcullis-proxy/portcullis/pipeline"
)

// NoopConfig has no keys.
type NoopConfig struct{}

// NewNoop builds the `noop` mutator. The upstream request is forwarded
// unchanged; as in Oathkeeper, the decision API answers with the request's
// own headers.
func NewNoop(*NoopConfig, pipeline.Deps) (pipeline.Mutator, error) {
	return pipeline.MutatorFunc(passHeaders), nil
}

// passHeaders answers with the request's own headers, under what the
// stages before it set.
func passHeaders(r *http.Request, s *pipeline.Session) error {
	for k, v := range r.Header {
		if _, set := s.Header[k]; !set {
			s.Header[k] = v
		}
	}
	return nil
}
