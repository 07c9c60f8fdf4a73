package authenticators

import (
	"net/http"

	"github.com/portcullis-proxy/portcullis/pipeline"
)

// AnonymousConfig configures the `anonymous` authenticator.
type AnonymousConfig struct {
	// Subject is the subject given to anonymous requests (default "anonymous").
	Subject string `json:"subject"`
}

// SetDefaults sets Subject to "anonymous".
func (c *AnonymousConfig) SetDefaults() { c.Subject = "anonymous" }

// NewAnonymous builds the `anonymous` authenticator. As in Oathkeeper it is
// responsible only for requests without an Authorization header, so a
// request that carries credentials is never silently downgraded.
func NewAnonymous(c *AnonymousConfig, _ pipeline.Deps) (pipeline.Authenticator, error) {
	return anonymous{subject: c.Subject}, nil
}

type anonymous struct{ subject string }

func (a anonymous) Authenticate(r *http.Request, s *pipeline.Session) error {
	if r.Header.Get("Authorization") != "" {
		return pipeline.ErrNotResponsible
	}
	s.Subject = a.subject
	return nil
}
