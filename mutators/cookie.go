package mutators

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/portcullis-proxy/portcullis/pipeline"
)

// CookieConfig configures the `cookie` mutator (Oathkeeper's keys).
type CookieConfig struct {
	// Cookies maps a cookie name to a template rendered with the session
	// (.Subject, .Extra, .MatchContext ...). Required, at least one.
	Cookies map[string]string `json:"cookies"`
}

// Validate requires at least one cookie with a valid name.
func (c *CookieConfig) Validate() error {
	if len(c.Cookies) == 0 {
		return errors.New(`key "cookies": at least one cookie is required`)
	}
	for name := range c.Cookies {
		if !validCookieName(name) {
			return fmt.Errorf(`key "cookies": %q is not a valid cookie name`, name)
		}
	}
	return nil
}

// NewCookie builds the `cookie` mutator. It renders each cookie into
// Session.Cookies; the proxy sets them on the upstream request, replacing
// any cookie of the same name the client sent, so a client cannot smuggle
// its own value under a name the gateway vouches for. Other client cookies
// pass through untouched.
//
// A value that renders with characters a cookie cannot carry (control
// characters, '"', ',', ';', '\' or non-ASCII) fails the request with 500
// rather than being silently altered; use sprig's b64enc or urlquery in the
// template for such data.
func NewCookie(c *CookieConfig, _ pipeline.Deps) (pipeline.Mutator, error) {
	ts, err := pipeline.ParseTemplates("cookies", c.Cookies)
	if err != nil {
		return nil, err
	}
	return cookieMutator{cookies: ts}, nil
}

type cookieMutator struct{ cookies []pipeline.NamedTemplate }

var _ pipeline.Mutator = cookieMutator{}

func (m cookieMutator) Mutate(_ *http.Request, s *pipeline.Session) error {
	for _, c := range m.cookies {
		v, err := c.Execute(s)
		if err != nil {
			return pipeline.NewError(http.StatusInternalServerError, "cookie mutator failed", fmt.Errorf("cookie %s: %w", c.Name, err))
		}
		if !validCookieValue(v) {
			return pipeline.NewError(http.StatusInternalServerError, "cookie mutator failed", fmt.Errorf("cookie %s: rendered value has characters a cookie cannot carry", c.Name))
		}
		if s.Cookies == nil {
			s.Cookies = map[string]string{}
		}
		s.Cookies[c.Name] = v
	}
	return nil
}

// validCookieName reports whether name is an RFC 6265 cookie-name (an
// RFC 7230 token).
func validCookieName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`()<>@,;:\"/[]?={}`, c) >= 0 {
			return false
		}
	}
	return true
}

// validCookieValue reports whether v is made of RFC 6265 cookie-octets
// (spaces allowed too: Go quotes such values when it writes them).
func validCookieValue(v string) bool {
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c < 0x20 || c >= 0x7f || c == '"' || c == ',' || c == ';' || c == '\\' {
			return false
		}
	}
	return true
}
