package authorizers

import (
	"github.com/portcullis-proxy/portcullis/pipeline"
)

// RemoteConfig configures the `remote` authorizer (Oathkeeper's keys, plus
// an optional payload template and a timeout).
type RemoteConfig struct {
	remoteCommon
	// Payload is a template rendered with the session and sent as the
	// body. Empty (the default, as in Oathkeeper) forwards the client's
	// request body, up to 1 MiB (a larger body is refused with 413); the
	// upstream still receives the body unchanged.
	Payload string `json:"payload,omitempty"`
}

// SetDefaults sets the timeout (2s).
func (c *RemoteConfig) SetDefaults() { c.setDefaults() }

// Validate requires an http(s) remote.
func (c *RemoteConfig) Validate() error { return c.validate() }

// NewRemote builds the `remote` authorizer: it POSTs the payload (or the
// request body, with the client's Content-Type) to `remote`, with the
// client's Authorization header and the templated `headers`.
//
//   - 200 allows, and copies forward_response_headers_to_upstream;
//   - 403 denies (403), 401 rejects the credential (401), 429 is passed on
//     with its Retry-After;
//   - an unreachable or slow API (per `timeout`, after `retry`) or a 5xx
//     answer denies with 503 — the request is never let through;
//   - any other answer denies with 403.
func NewRemote(c *RemoteConfig, deps pipeline.Deps) (pipeline.Authorizer, error) {
	return newRemoteAuthorizer("remote", &c.remoteCommon, c.Payload, false, deps)
}
