package rules

import (
	"errors"
	"fmt"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/portcullis-proxy/portcullis/pipeline"
)

// WebSocket is the `websocket` block of a rule, and of the configuration
// (where it holds the defaults for every rule). Unset fields inherit: rule,
// then configuration, then the built-in defaults of [DefaultWebSocketPolicy].
type WebSocket struct {
	// MaxLifetime is the hard cap on a tunnel's life from the upgrade.
	MaxLifetime *pipeline.Duration `json:"max_lifetime,omitempty"`
	// BindToSession also ends the tunnel at the session's expiry.
	BindToSession *bool `json:"bind_to_session,omitempty"`
	// RevalidateEvery re-runs the admitting authenticator with the original
	// credential, bypassing caches; 0 turns re-validation off.
	RevalidateEvery *pipeline.Duration `json:"revalidate_every,omitempty"`
	// Reauthorize re-runs the rule's authorizer at every re-check, with
	// the session as the re-validation found it; a deny closes the
	// channel ("access revoked"). Unset, it is on unless the rule's
	// authorizer is allow.
	Reauthorize *bool `json:"reauthorize,omitempty"`
	// TolerateUnavailable keeps a tunnel open when the identity provider
	// (or, re-authorizing, the authorizer) cannot be reached at a re-check
	// (by default the tunnel is closed).
	TolerateUnavailable *bool `json:"tolerate_unavailable,omitempty"`
	// UnavailableGrace bounds how long tolerate_unavailable keeps a tunnel
	// open while re-checks keep failing: past it the tunnel closes.
	UnavailableGrace *pipeline.Duration `json:"unavailable_grace,omitempty"`
	// IdleTimeout ends a tunnel that carried no frame either way for this
	// long; 0 turns it off.
	IdleTimeout *pipeline.Duration `json:"idle_timeout,omitempty"`
	// AllowedOrigins lists exact origins (scheme://host[:port]). An upgrade
	// whose Origin is present and not listed is refused with 403. Unset,
	// only the request's own origin is allowed (same-origin); ["*"] allows
	// any origin.
	AllowedOrigins []string `json:"allowed_origins,omitempty"`
	// MaxConnections caps concurrent tunnels of the rule (0: no cap); beyond
	// it upgrades get 503.
	MaxConnections *int `json:"max_connections,omitempty"`
	// ForwardCookies sends the client's cookies on the upstream handshake.
	ForwardCookies *bool `json:"forward_cookies,omitempty"`
	// CloseGrace is how long the proxy waits for Close replies after it
	// sent its own Close before it closes both connections.
	CloseGrace *pipeline.Duration `json:"close_grace,omitempty"`
	// StreamCloseEvent is the event type of the final event a
	// text/event-stream response gets when the proxy ends it (a JSON data
	// line names the reason); "" sends none.
	StreamCloseEvent *string `json:"stream_close_event,omitempty"`
}

// WebSocketPolicy is a rule's channel policy as the configuration and the
// rule compiler resolve it: the [pipeline.WebSocketPolicy] the rule's
// channels live under, and whether a websocket block set reauthorize.
type WebSocketPolicy struct {
	pipeline.WebSocketPolicy

	// reauthorizeSet says that a websocket block set reauthorize; else the
	// compiler resolves it from the rule's authorizer.
	reauthorizeSet bool
}

// DefaultRevalidateEvery is the built-in revalidate_every. Re-checks are
// coalesced by session (one identity-provider call per session per
// interval), so the cost is live sessions per interval, whatever the number
// of tunnels: see docs/websockets.md for the measurement behind 1m.
const DefaultRevalidateEvery = time.Minute

// DefaultStreamCloseEvent is the built-in stream_close_event.
const DefaultStreamCloseEvent = "portcullis-close"

// DefaultWebSocketPolicy is the built-in default policy.
func DefaultWebSocketPolicy() WebSocketPolicy {
	return WebSocketPolicy{WebSocketPolicy: pipeline.WebSocketPolicy{
		MaxLifetime:     time.Hour,
		BindToSession:   true,
		RevalidateEvery: DefaultRevalidateEvery,
		// Unless a websocket block sets it, a rule whose authorizer is
		// allow does not re-authorize (resolveReauthorize).
		Reauthorize:      true,
		UnavailableGrace: 5 * time.Minute,
		IdleTimeout:      10 * time.Minute,
		ForwardCookies:   true,
		CloseGrace:       time.Second,
		StreamCloseEvent: DefaultStreamCloseEvent,
	}}
}

// errMustNotBeNegative is the Err of a negative duration or count.
var errMustNotBeNegative = errors.New("must not be negative")

// Apply returns base with the fields set in w overriding it. A nil w
// returns base unchanged. A value that is not allowed is a
// [*pipeline.KeyError] whose Path is relative to the websocket block.
func (w *WebSocket) Apply(base WebSocketPolicy) (WebSocketPolicy, error) {
	if w == nil {
		return base, nil
	}
	p := base
	if w.MaxLifetime != nil {
		p.MaxLifetime = w.MaxLifetime.D()
	}
	if w.BindToSession != nil {
		p.BindToSession = *w.BindToSession
	}
	if w.RevalidateEvery != nil {
		p.RevalidateEvery = w.RevalidateEvery.D()
	}
	if w.Reauthorize != nil {
		p.Reauthorize, p.reauthorizeSet = *w.Reauthorize, true
	}
	if w.TolerateUnavailable != nil {
		p.TolerateUnavailable = *w.TolerateUnavailable
	}
	if w.UnavailableGrace != nil {
		p.UnavailableGrace = w.UnavailableGrace.D()
	}
	if w.IdleTimeout != nil {
		p.IdleTimeout = w.IdleTimeout.D()
	}
	if w.MaxConnections != nil {
		p.MaxConnections = *w.MaxConnections
	}
	if w.ForwardCookies != nil {
		p.ForwardCookies = *w.ForwardCookies
	}
	if w.CloseGrace != nil {
		p.CloseGrace = w.CloseGrace.D()
	}
	if w.StreamCloseEvent != nil {
		p.StreamCloseEvent = *w.StreamCloseEvent
		if strings.ContainsAny(p.StreamCloseEvent, "\r\n:") {
			return p, &pipeline.KeyError{Path: []string{"stream_close_event"}, Err: fmt.Errorf("%q must be one line without a colon", p.StreamCloseEvent)}
		}
	}
	if w.AllowedOrigins != nil {
		p.AllowedOrigins, p.AnyOrigin = map[string]bool{}, false
		for i, o := range w.AllowedOrigins {
			if o == "*" {
				p.AnyOrigin = true
				continue
			}
			u, err := url.Parse(o)
			if err != nil || u.Scheme == "" || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
				return p, &pipeline.KeyError{Path: []string{"allowed_origins", strconv.Itoa(i)}, Err: fmt.Errorf("%q is not an origin (scheme://host[:port]) or \"*\"", o)}
			}
			p.AllowedOrigins[pipeline.NormalizeOrigin(u.Scheme, u.Host)] = true
		}
	}
	for _, c := range []struct {
		key      string
		negative bool
	}{
		{"max_lifetime", p.MaxLifetime < 0},
		{"revalidate_every", p.RevalidateEvery < 0},
		{"idle_timeout", p.IdleTimeout < 0},
		{"max_connections", p.MaxConnections < 0},
		{"close_grace", p.CloseGrace < 0},
	} {
		if c.negative {
			return p, &pipeline.KeyError{Path: []string{c.key}, Err: errMustNotBeNegative}
		}
	}
	return p, nil
}

// resolveReauthorize returns p with reauthorize resolved for a rule whose
// authorizer is named authorizer: as a websocket block set it, else on
// unless the authorizer is allow (which has nothing to decide again).
func (p WebSocketPolicy) resolveReauthorize(authorizer string) WebSocketPolicy {
	if !p.reauthorizeSet {
		p.Reauthorize = authorizer != "allow"
	}
	return p
}

// Equal reports whether p and o are the same policy (how it was resolved
// does not count).
func (p WebSocketPolicy) Equal(o WebSocketPolicy) bool {
	return reflect.DeepEqual(p.WebSocketPolicy, o.WebSocketPolicy)
}
