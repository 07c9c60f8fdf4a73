package rules

import (
	"encoding/json"
)

// Rule is an access rule in Oathkeeper's format, as written in
// access-rules.yml (YAML or JSON). Every field of Oathkeeper's rule loads
// unchanged; `websocket` is portcullis's addition.
type Rule struct {
	ID             string     `json:"id"`
	Version        string     `json:"version,omitempty"`
	Description    string     `json:"description,omitempty"`
	Match          Match      `json:"match"`
	Authenticators []Handler  `json:"authenticators"`
	Authorizer     Handler    `json:"authorizer"`
	Mutators       []Handler  `json:"mutators"`
	Errors         []Handler  `json:"errors,omitempty"`
	Upstream       Upstream   `json:"upstream"`
	WebSocket      *WebSocket `json:"websocket,omitempty"`
	// RevokeSessionOnSuccess revokes the session the rule's authenticator
	// found once the upstream answers the request with success (2xx or
	// 3xx): for the rule that carries an identity provider's logout
	// endpoints (Kratos's GET /self-service/logout and DELETE
	// /self-service/logout/api), so that signing out closes the session's
	// live tunnels on every replica at once. portcullis's addition.
	RevokeSessionOnSuccess bool `json:"revoke_session_on_success,omitempty"`
}

// Match selects the requests a rule applies to.
type Match struct {
	// URL is matched against scheme://host/path of the request (no query),
	// with the parts inside < > interpreted by the matching strategy.
	URL string `json:"url"`
	// Methods lists the HTTP methods the rule applies to.
	Methods []string `json:"methods"`
}

// Handler names a handler and its rule-level config, which is merged over
// the handler's global config (the rule's keys win).
type Handler struct {
	Handler string          `json:"handler"`
	Config  json.RawMessage `json:"config,omitempty"`
}

// Upstream says where an allowed request goes.
type Upstream struct {
	// URL is the upstream base URL; the request path is joined to its path.
	URL string `json:"url"`
	// PreserveHost keeps the client's Host header instead of the upstream's.
	PreserveHost bool `json:"preserve_host,omitempty"`
	// StripPath is removed from the start of the request path.
	StripPath string `json:"strip_path,omitempty"`
}
