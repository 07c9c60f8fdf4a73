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

// NewWWWAuthenticate builds the `www_authenticate` error handler, as
// Oathkeeper's: whatever the error it is chosen for (a missing session, an
// authorizer's deny, an identity provider that is down — `when` decides
// which), the answer is a 401 with `WWW-Authenticate: <scheme>
// realm=<realm>` (the realm written as configured, unquoted, as Oathkeeper
// writes it) and the body "Unauthorized". Access is never granted by it:
// every error it answers stays a denial.
func NewWWWAuthenticate(c *WWWAuthenticateConfig, _ pipeline.Deps) (pipeline.ErrorHandler, error) {
	return &wwwAuthenticate{challenge: c.Scheme + " realm=" + c.Realm}, nil
}

type wwwAuthenticate struct {
	challenge string
}

var _ pipeline.ErrorHandler = (*wwwAuthenticate)(nil)

func (h *wwwAuthenticate) HandleError(w http.ResponseWriter, _ *http.Request, _ error) {
	w.Header().Set("WWW-Authenticate", h.challenge)
	http.Error(w, http.StatusText(http.StatusUnauthorized), http.StatusUnauthorized)
}

// isTokenChar reports whether r may appear in an HTTP token.
func isTokenChar(r rune) bool {
	switch {
	case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		return true
	}
	return strings.ContainsRune("!#$%&'*+-.^_`|~", r)
}
