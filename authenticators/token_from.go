package authenticators

// Where a rule says a bearer credential is: Oathkeeper's `token_from`
// block (one of header, query_parameter, cookie; by default the
// Authorization header's Bearer value).

import (
	"errors"
	"net/http"
	"net/textproto"
	"strings"

	"github.com/portcullis-proxy/portcullis/pipeline"
)

// TokenLocation is the `token_from` block of jwt and oauth2_introspection
// (bearer_token's [TokenFrom] adds websocket_protocol). At most one field
// may be set.
type TokenLocation struct {
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
func (l *TokenLocation) Validate() error {
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
func (l *TokenLocation) Extract(r *http.Request) string {
	switch {
	case l == nil:
		return bearerCredential(r.Header.Get("Authorization"))
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
		return bearerCredential(r.Header.Get("Authorization"))
	}
}

// Carriers names the query parameter the token is read from, if any: an
// authenticator reading from l reports it as its [pipeline.CarrierReader]
// answer, so the rule removes it whichever authenticator decides.
func (l *TokenLocation) Carriers() pipeline.Scrub {
	if l == nil || l.QueryParameter == "" {
		return pipeline.Scrub{}
	}
	return pipeline.Scrub{QueryParams: []string{l.QueryParameter}}
}

// Taken records on s that token, read by [TokenLocation.Extract], travels
// in a query parameter, so that it reaches neither the upstream nor an error
// handler's redirect whatever its fate. An empty token records nothing.
func (l *TokenLocation) Taken(s *pipeline.Session, token string) {
	if l != nil && l.QueryParameter != "" && token != "" {
		s.Scrub.QueryParams = append(s.Scrub.QueryParams, l.QueryParameter)
	}
}

func bearerCredential(h string) string {
	const prefix = "bearer "
	if len(h) < len(prefix) || !strings.EqualFold(h[:len(prefix)], prefix) {
		return ""
	}
	return strings.TrimSpace(h[len(prefix):])
}
