package authenticators

import (
	"errors"
	"net/http"
	"strings"

	"github.com/portcullis-proxy/portcullis/pipeline"
)

// TokenFrom is bearer_token's `token_from` block: Oathkeeper's header,
// query_parameter or cookie, plus websocket_protocol. At most one may be
// set; none means the Authorization header's Bearer value.
type TokenFrom struct {
	TokenLocation
	// WebsocketProtocol is a prefix: the token is the rest of the
	// Sec-WebSocket-Protocol entry that starts with it ("<prefix><token>").
	// Browsers cannot set headers on a WebSocket, but they can offer
	// subprotocols. The entry is recorded in Session.Scrub.Subprotocols so
	// the proxy neither forwards it upstream nor echoes it back. The token
	// must consist of characters allowed in an HTTP token (Kratos session
	// tokens do).
	WebsocketProtocol string `json:"websocket_protocol,omitempty"`
}

// Validate rejects a block that names more than one place.
func (t *TokenFrom) Validate() error {
	n := 0
	for _, s := range []string{t.Header, t.QueryParameter, t.Cookie, t.WebsocketProtocol} {
		if s != "" {
			n++
		}
	}
	if n > 1 {
		return errors.New("token_from: set only one of header, query_parameter, cookie, websocket_protocol")
	}
	return nil
}

// BearerTokenConfig configures the `bearer_token` authenticator:
// Oathkeeper's keys (see [SessionCheckConfig]) plus token_from and prefix.
type BearerTokenConfig struct {
	SessionCheckConfig
	// TokenFrom says where the token is (default: Authorization: Bearer).
	TokenFrom *TokenFrom `json:"token_from"`
	// Prefix, when set, makes the handler responsible only for tokens that
	// start with it (for Kratos session tokens, "ory_st_"). The whole
	// token, prefix included, is checked.
	Prefix string `json:"prefix"`
	// AcceptXSessionToken also takes the token from Kratos's own
	// X-Session-Token header when token_from's place holds none.
	AcceptXSessionToken bool `json:"accept_x_session_token"`
}

// SetDefaults sets the shared defaults, with Oathkeeper's subject_from of
// bearer_token: "sub".
func (c *BearerTokenConfig) SetDefaults() {
	c.SessionCheckConfig.SetDefaults()
	c.SubjectFrom = "sub"
}

// Validate checks the shared keys and token_from.
func (c *BearerTokenConfig) Validate() error {
	if c.TokenFrom != nil {
		if err := c.TokenFrom.Validate(); err != nil {
			return err
		}
	}
	return c.SessionCheckConfig.Validate()
}

// NewBearerToken builds the `bearer_token` authenticator: it sends the
// request's session token to the session store (as X-Session-Token to
// Kratos's /sessions/whoami, as Authorization: Bearer to any other store)
// and admits the session the store vouches for. A request without a token
// (or with one lacking `prefix`) is not its responsibility; a rejected
// token is a 401; a store that is down, slow past `timeout` or failing is a
// 503. A token taken from a query parameter is removed from the URL before
// the request goes upstream.
func NewBearerToken(c *BearerTokenConfig, deps pipeline.Deps) (pipeline.Authenticator, error) {
	from := c.TokenFrom
	if from == nil {
		from = &TokenFrom{}
	}
	checker, err := newSessionChecker("bearer_token", &c.SessionCheckConfig, "Authorization", deps)
	if err != nil {
		return nil, err
	}
	return &bearerToken{
		from: from, prefix: c.Prefix, xst: c.AcceptXSessionToken, checker: checker,
		asWritten: !checker.isKratos() && fromAuthorization(from),
	}, nil
}

type bearerToken struct {
	from    *TokenFrom
	prefix  string
	xst     bool
	checker *sessionChecker
	// asWritten: the token is read from the Authorization header and the
	// store is a plain one, which gets that header as the client wrote it.
	// (Kratos is sent the token alone, as X-Session-Token.)
	asWritten bool
}

var (
	_ pipeline.Authenticator = (*bearerToken)(nil)
	_ pipeline.CarrierReader = (*bearerToken)(nil)
)

// Carriers names the query parameter or the subprotocol prefix the token
// is read from, so the rule removes it whichever authenticator decides.
func (a *bearerToken) Carriers() pipeline.Scrub {
	var c pipeline.Scrub
	if a.from.WebsocketProtocol != "" {
		c.SubprotocolPrefixes = []string{a.from.WebsocketProtocol}
	}
	if a.from.QueryParameter != "" {
		c.QueryParams = []string{a.from.QueryParameter}
	}
	return c
}

func (a *bearerToken) Authenticate(r *http.Request, s *pipeline.Session) error {
	token, entry := a.token(r)
	// Carriers are recorded before any check: whatever the token's fate,
	// it must reach neither the upstream nor an error handler's redirect.
	switch {
	case token == "":
	case entry != "":
		s.Scrub.Subprotocols = append(s.Scrub.Subprotocols, entry)
	case a.from.QueryParameter != "":
		s.Scrub.QueryParams = append(s.Scrub.QueryParams, a.from.QueryParameter)
	}
	if token == "" || !strings.HasPrefix(token, a.prefix) {
		return pipeline.ErrNotResponsible
	}
	in := a.checker.input(r, "", token)
	if a.asWritten {
		// A plain session store gets the Authorization header as the
		// client wrote it ("bearer zyx" stays lower case), as Oathkeeper
		// forwards it — unless the token came from X-Session-Token.
		if h := r.Header.Get("Authorization"); bearerCredential(h) == token {
			in.authorization = h
		}
	}
	return a.checker.authenticate(r, s, &in)
}

// fromAuthorization reports whether f reads the token from the
// Authorization header.
func fromAuthorization(f *TokenFrom) bool {
	return f.WebsocketProtocol == "" && f.QueryParameter == "" && f.Cookie == "" &&
		(f.Header == "" || http.CanonicalHeaderKey(f.Header) == "Authorization")
}

// token returns the request's token and, when it came from a
// Sec-WebSocket-Protocol entry, that entry.
func (a *bearerToken) token(r *http.Request) (token, entry string) {
	if p := a.from.WebsocketProtocol; p != "" {
		token, entry = subprotocolToken(r, p)
	} else {
		token = a.from.TokenLocation.Extract(r)
	}
	if token == "" && a.xst {
		token = strings.TrimSpace(r.Header.Get("X-Session-Token"))
		entry = ""
	}
	return token, entry
}

// subprotocolToken finds the first Sec-WebSocket-Protocol entry starting
// with prefix (RFC 6455 §4.1: a comma-separated list, possibly over several
// header lines).
func subprotocolToken(r *http.Request, prefix string) (token, entry string) {
	for _, line := range r.Header.Values("Sec-WebSocket-Protocol") {
		for e := range strings.SplitSeq(line, ",") {
			e = strings.TrimSpace(e)
			if len(e) > len(prefix) && strings.HasPrefix(e, prefix) {
				return e[len(prefix):], e
			}
		}
	}
	return "", ""
}
