package mutators

import (
	"fmt"
	"net/http"

	"github.com/portcullis-proxy/portcullis/pipeline"
)

// HeaderConfig configures the `header` mutator.
type HeaderConfig struct {
	// Headers maps a header name to a template rendered with the session
	// (.Subject, .Extra, .MatchContext ...).
	Headers map[string]string `json:"headers"`
}

// Validate requires at least one header.
func (c *HeaderConfig) Validate() error {
	if len(c.Headers) == 0 {
		return fmt.Errorf("key \"headers\": at least one header is required")
	}
	return nil
}

// NewHeader builds the `header` mutator. Its templates are compiled when
// rules load; every header it sets replaces whatever the client sent under
// that name, so a client cannot spoof an identity header.
func NewHeader(c *HeaderConfig, _ pipeline.Deps) (pipeline.Mutator, error) {
	ts, err := pipeline.ParseTemplates("headers", c.Headers)
	if err != nil {
		return nil, err
	}
	for i := range ts {
		ts[i].Name = http.CanonicalHeaderKey(ts[i].Name)
	}
	return header{headers: ts}, nil
}

type header struct{ headers []pipeline.NamedTemplate }

func (h header) Mutate(_ *http.Request, s *pipeline.Session) error {
	for _, ht := range h.headers {
		v, err := ht.Execute(s)
		if err != nil {
			return pipeline.NewError(http.StatusInternalServerError, "header mutator failed", fmt.Errorf("%s: %w", ht.Name, err))
		}
		s.Header.Set(ht.Name, v)
	}
	return nil
}
