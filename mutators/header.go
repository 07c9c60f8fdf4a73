package mutators

import (
	"fmt"
	"net/http"
	"sort"

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
	h := header{}
	names := make([]string, 0, len(c.Headers))
	for k := range c.Headers {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, name := range names {
		t, err := pipeline.ParseTemplate("headers."+name, c.Headers[name])
		if err != nil {
			return nil, err
		}
		h.headers = append(h.headers, headerTemplate{name: http.CanonicalHeaderKey(name), t: t})
	}
	return h, nil
}

type headerTemplate struct {
	name string
	t    *pipeline.Template
}

type header struct{ headers []headerTemplate }

func (h header) Mutate(_ *http.Request, s *pipeline.Session) error {
	for _, ht := range h.headers {
		v, err := ht.t.Execute(s)
		if err != nil {
			return pipeline.NewError(http.StatusInternalServerError, "header mutator failed", fmt.Errorf("%s: %w", ht.name, err))
		}
		s.Header.Set(ht.name, v)
	}
	return nil
}
