package errorhandlers

import (
	"errors"
	"net/http"
	"strings"

	"github.com/portcullis-proxy/portcullis/pipeline"
)

// WWWAuthenticateConfig configures the `www_authenticate` error handler
// (Oathkeeper's `realm`, plus the challenge scheme).
type WWWAuthenticateConfig struct {
	// Realm names the protection space (default "Please authenticate.").
	Realm string `json:"realm"`
	// Scheme is the challenge's auth scheme (default "Basic", as in
	// Oathkeeper; API clients holding session tokens expect "Bearer").
	Scheme string `json:"scheme"`
	// When chooses the errors and requests this handler answers.
	When []pipeline.When `json:"when"`
}

// SetDefaults sets Oathkeeper's realm and the Basic scheme.
func (c *WWWAuthenticateConfig) SetDefaults() {
	c.Realm = "Please authenticate."
	c.Scheme = "Basic"
}

// Validate requires a scheme that is an HTTP token (RFC 9110 §11.1).
func (c *WWWAuthenticateConfig) Validate() error {
	if c.Scheme == "" || strings.IndexFunc(c.Scheme, func(r rune) bool { return !isTokenChar(r) }) >= 0 {
		return errors.New("scheme: must be an HTTP token such as Basic or Bearer")
	}
	if strings.ContainsAny(c.Realm, "\r\n") {
		return errors.New("realm: must not contain line breaks")
	}
	return nil
}

// NewWWWAuthenticate builds the `www_authenticate` error handler: a 401
// with a `WWW-Authenticate: <scheme> realm="<realm>"` challenge, so API
// clients (and browsers, for Basic) learn how to authenticate. An error
// that is not a 401 — a 403, or a 503 because the identity provider is
// down — is answered with its own status as JSON and no challenge: a
// challenge would tell the client its credentials are the problem.
var NewWWWAuthenticate = pipeline.Typed(func(c *WWWAuthenticateConfig, _ pipeline.Deps) (pipeline.ErrorHandler, error) {
	w, err := pipeline.CompileWhens(c.When)
	if err != nil {
		return nil, err
	}
	return &wwwAuthenticate{challenge: c.Scheme + " realm=" + quote(c.Realm), when: w}, nil
})

type wwwAuthenticate struct {
	challenge string
	when      pipeline.Whens
}

var _ pipeline.ErrorHandler = (*wwwAuthenticate)(nil)

func (h *wwwAuthenticate) Matches(r *http.Request, err error) bool { return h.when.Matches(r, err) }

func (h *wwwAuthenticate) HandleError(w http.ResponseWriter, _ *http.Request, err error) {
	if pipeline.StatusOf(err) == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", h.challenge)
	}
	pipeline.WriteError(w, err, false)
}

// quote renders s as an HTTP quoted-string.
func quote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		if r == '"' || r == '\\' {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	b.WriteByte('"')
	return b.String()
}

// isTokenChar reports whether r may appear in an HTTP token.
func isTokenChar(r rune) bool {
	switch {
	case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		return true
	}
	return strings.ContainsRune("!#$%&'*+-.^_`|~", r)
}
