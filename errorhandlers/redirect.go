package errorhandlers

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/portcullis-proxy/portcullis/pipeline"
)

// RedirectConfig configures the `redirect` error handler (Oathkeeper's
// keys).
type RedirectConfig struct {
	// To is where the client is sent, typically the login page (required).
	To string `json:"to"`
	// Code is the redirect status (default 302; 301, 302, 303, 307, 308).
	Code int `json:"code"`
	// ReturnToQueryParam, when set, adds the URL the client asked for to To
	// under this query parameter (Kratos uses "return_to"), so the login
	// page can send the client back. The login service must check the
	// value against its own allow-list (Kratos's allowed_return_urls).
	ReturnToQueryParam string `json:"return_to_query_param"`
}

// SetDefaults sets code 302.
func (c *RedirectConfig) SetDefaults() { c.Code = http.StatusFound }

// Validate requires an absolute or root-relative `to` and a redirect code.
func (c *RedirectConfig) Validate() error {
	if c.To == "" {
		return pipeline.Required("to")
	}
	u, err := url.Parse(c.To)
	if err != nil || (!u.IsAbs() && !strings.HasPrefix(c.To, "/")) {
		return fmt.Errorf("to: %q is not an absolute URL or an absolute path", c.To)
	}
	switch c.Code {
	case http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther,
		http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
	default:
		return fmt.Errorf("code: %d is not a redirect status (301, 302, 303, 307, 308)", c.Code)
	}
	return nil
}

// NewRedirect builds the `redirect` error handler: it answers a denied
// request with a redirect to `to` — the behaviour of a single-sign-on
// filter that sends a browser without a session to the login page and,
// with return_to_query_param, back to where it was going.
func NewRedirect(c *RedirectConfig, _ pipeline.Deps) (pipeline.ErrorHandler, error) {
	to, _ := url.Parse(c.To) // validated
	return &redirect{to: to, code: c.Code, param: c.ReturnToQueryParam}, nil
}

type redirect struct {
	to    *url.URL
	code  int
	param string
}

var _ pipeline.ErrorHandler = (*redirect)(nil)

func (h *redirect) HandleError(w http.ResponseWriter, r *http.Request, _ error) {
	target := *h.to
	if h.param != "" {
		q := target.Query()
		q.Set(h.param, originalURL(r))
		target.RawQuery = q.Encode()
	}
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, target.String(), h.code)
}

// originalURL is the URL the client asked for. The front ends hand error
// handlers a request whose URL is absolute, with the scheme and host they
// decided on: the connection's (or a trusted load balancer's X-Forwarded-*)
// on the proxy, the described request's on the decision API. That URL is
// used as it is, so a client's own X-Forwarded-Host cannot choose where
// return_to points. Only a request that is not absolute (a caller outside
// the front ends) is reconstructed as Oathkeeper does, from
// X-Forwarded-Proto, -Host and -Uri, else its own scheme, Host and request
// URI.
func originalURL(r *http.Request) string {
	if r.URL.IsAbs() && r.URL.Host != "" {
		return r.URL.Scheme + "://" + r.URL.Host + r.URL.RequestURI()
	}
	u := url.URL{Scheme: "http", Host: r.Host}
	if r.TLS != nil {
		u.Scheme = "https"
	}
	if p := firstValue(r.Header.Get("X-Forwarded-Proto")); p == "http" || p == "https" {
		u.Scheme = p
	}
	if h := firstValue(r.Header.Get("X-Forwarded-Host")); h != "" {
		u.Host = h
	}
	uri := r.URL.RequestURI()
	if fu := r.Header.Get("X-Forwarded-Uri"); strings.HasPrefix(fu, "/") {
		uri = fu
	}
	return u.Scheme + "://" + u.Host + uri
}

func firstValue(v string) string {
	if i := strings.IndexByte(v, ','); i >= 0 {
		v = v[:i]
	}
	return strings.TrimSpace(v)
}
