// Package tokenfrom reads a bearer credential from where a rule says it is:
// Oathkeeper's `token_from` block (one of header, query_parameter, cookie;
// by default the Authorization header's Bearer value).
package tokenfrom

import (
	"errors"
	"net/http"
	"net/textproto"
	"strings"
)

// Location is the `token_from` block. At most one field may be set.
type Location struct {
	// Header names a request header holding the token. For Authorization
	// the "Bearer " prefix is required and removed; any other header's value
	// is the token as is.
	Header string `json:"header,omitempty"`
	// QueryParameter names a URL query parameter holding the token (the way
	// browsers pass tokens to `new WebSocket(url)`). The parameter is removed
	// before the request goes upstream.
	QueryParameter string `json:"query_parameter,omitempty"`
	// Cookie names a cookie holding the token.
	Cookie string `json:"cookie,omitempty"`
}

// Validate rejects a block that names more than one place.
func (l *Location) Validate() error {
	n := 0
	for _, s := range []string{l.Header, l.QueryParameter, l.Cookie} {
		if s != "" {
			n++
		}
	}
	if n > 1 {
		return errors.New("token_from: set only one of header, query_parameter, cookie")
	}
	return nil
}

// Extract returns the token, or "" when the request carries none there.
func (l *Location) Extract(r *http.Request) string {
	switch {
	case l == nil:
		return bearer(r.Header.Get("Authorization"))
	case l.QueryParameter != "":
		return r.URL.Query().Get(l.QueryParameter)
	case l.Cookie != "":
		c, err := r.Cookie(l.Cookie)
		if err != nil {
			return ""
		}
		return c.Value
	case l.Header != "" && textproto.CanonicalMIMEHeaderKey(l.Header) != "Authorization":
		return strings.TrimSpace(r.Header.Get(l.Header))
	default:
		return bearer(r.Header.Get("Authorization"))
	}
}

// ScrubQueryParameter returns the query parameter to remove from the
// upstream URL, if the token travels in one.
func (l *Location) ScrubQueryParameter() string {
	if l == nil {
		return ""
	}
	return l.QueryParameter
}

func bearer(h string) string {
	const prefix = "bearer "
	if len(h) < len(prefix) || !strings.EqualFold(h[:len(prefix)], prefix) {
		return ""
	}
	return strings.TrimSpace(h[len(prefix):])
}
