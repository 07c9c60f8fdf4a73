package authenticators

import (
	"net/http"
	"strings"

	"github.com/portcullis-proxy/portcullis/pipeline"
)

// CookieSessionConfig configures the `cookie_session` authenticator:
// Oathkeeper's keys (see [SessionCheckConfig]) plus `only`.
type CookieSessionConfig struct {
	SessionCheckConfig
	// Only lists the cookie names that carry the session (for Kratos,
	// "ory_kratos_session"). When set, the handler is responsible only for
	// requests carrying one of them, and only those cookies are sent to the
	// session store; when empty, any cookie makes it responsible and the
	// whole Cookie header is sent.
	Only []string `json:"only"`
}

// SetDefaults sets the shared defaults.
func (c *CookieSessionConfig) SetDefaults() { c.SessionCheckConfig.SetDefaults() }

// Validate checks the shared keys.
func (c *CookieSessionConfig) Validate() error { return c.SessionCheckConfig.Validate() }

// NewCookieSession builds the `cookie_session` authenticator: it forwards
// the request's session cookie to the session store (Kratos's
// /sessions/whoami, or any store with Oathkeeper's semantics) and admits the
// session the store vouches for. A request without the cookie is not its
// responsibility; a session the store rejects is a 401; a store that is
// down, slow past `timeout` or failing is a 503 — never an admission.
func NewCookieSession(c *CookieSessionConfig, deps pipeline.Deps) (pipeline.Authenticator, error) {
	checker, err := newSessionChecker("cookie_session", &c.SessionCheckConfig, "Cookie", deps)
	if err != nil {
		return nil, err
	}
	return &cookieSession{only: c.Only, checker: checker}, nil
}

type cookieSession struct {
	only    []string
	checker *sessionChecker
}

var _ pipeline.Authenticator = (*cookieSession)(nil)

func (a *cookieSession) Authenticate(r *http.Request, s *pipeline.Session) error {
	cookie := a.sessionCookies(r)
	if cookie == "" {
		return pipeline.ErrNotResponsible
	}
	in := a.checker.input(r, cookie, "")
	return a.checker.authenticate(r, s, &in)
}

// sessionCookies returns the Cookie header to send to the store: the
// request's cookies, or only the configured ones; "" when there are none.
func (a *cookieSession) sessionCookies(r *http.Request) string {
	if len(a.only) == 0 {
		return strings.Join(r.Header.Values("Cookie"), "; ")
	}
	if len(a.only) == 1 {
		c, err := r.Cookie(a.only[0])
		if err != nil {
			return ""
		}
		return c.Name + "=" + c.Value
	}
	var b strings.Builder
	for _, name := range a.only {
		c, err := r.Cookie(name)
		if err != nil {
			continue
		}
		if b.Len() > 0 {
			b.WriteString("; ")
		}
		b.WriteString(c.Name)
		b.WriteByte('=')
		b.WriteString(c.Value)
	}
	return b.String()
}
