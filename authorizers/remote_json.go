package authorizers

import (
	"github.com/portcullis-proxy/portcullis/pipeline"
)

// RemoteJSONConfig configures the `remote_json` authorizer.
type RemoteJSONConfig struct {
	remoteCommon
	// Payload is a template rendered with the session that must produce a
	// JSON text, e.g. {"subject": "{{ print .Subject }}", "resource":
	// "{{ printIndex .MatchContext.RegexpCaptureGroups 0 }}"}. Required.
	// Values are inserted verbatim: quote strings in the template, and use
	// sprig's toJson for values that may contain quotes.
	Payload string `json:"payload"`
}

// SetDefaults sets the timeout (2s).
func (c *RemoteJSONConfig) SetDefaults() { c.setDefaults() }

// Validate requires a remote and a payload.
func (c *RemoteJSONConfig) Validate() error {
	if c.Payload == "" {
		return pipeline.Required("payload")
	}
	return c.validate()
}

// NewRemoteJSON builds the `remote_json` authorizer: it POSTs the rendered
// JSON payload to `remote` as application/json, with the client's
// Authorization header and the templated `headers` — the pattern of an
// API gateway that sends a WebSocket upgrade's credentials to an
// authorization API and lets the upgrade through only on 200. Answers are
// judged as by [NewRemote]: only 200 allows, and an unreachable, slow or
// failing API denies with 503. A payload that does not render valid JSON
// is a 500, never sent.
func NewRemoteJSON(c *RemoteJSONConfig, deps pipeline.Deps) (pipeline.Authorizer, error) {
	return newRemoteAuthorizer("remote_json", &c.remoteCommon, c.Payload, true, deps)
}
