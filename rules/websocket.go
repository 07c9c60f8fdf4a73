package rules

import (
	"fmt"
	"net/url"
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
	// TolerateUnavailable keeps a tunnel open when the identity provider
	// cannot be reached at re-validation (by default the tunnel is closed).
	TolerateUnavailable *bool `json:"tolerate_unavailable,omitempty"`
	// UnavailableGrace bounds how long tolerate_unavailable keeps a tunnel
	// open while re-checks keep failing: past it the tunnel closes.
	UnavailableGrace *pipeline.Duration `json:"unavailable_grace,omitempty"`
	// IdleTimeout ends a tunnel that carried no frame either way for this
	// long; 0 turns it off.
	IdleTimeout *pipeline.Duration `json:"idle_timeout,omitempty"`
	// AllowedOrigins lists exact origins (scheme://host[:port]). When set, an
	// upgrade whose Origin is present and not listed is refused with 403.
	AllowedOrigins []string `json:"allowed_origins,omitempty"`
	// MaxConnections caps concurrent tunnels of the rule (0: no cap); beyond
	// it upgrades get 503.
	MaxConnections *int `json:"max_connections,omitempty"`
	// ForwardCookies sends the client's cookies on the upstream handshake.
	ForwardCookies *bool `json:"forward_cookies,omitempty"`
	// CloseGrace is how long the proxy waits for Close replies after it
	// sent its own Close before it closes both connections.
	CloseGrace *pipeline.Duration `json:"close_grace,omitempty"`
}

// WebSocketPolicy is the resolved lifetime policy of one rule's tunnels.
type WebSocketPolicy struct {
	MaxLifetime         time.Duration
	BindToSession       bool
	RevalidateEvery     time.Duration
	TolerateUnavailable bool
	UnavailableGrace    time.Duration
	IdleTimeout         time.Duration
	AllowedOrigins      map[string]bool // lower-cased; nil: any origin
	MaxConnections      int
	ForwardCookies      bool
	CloseGrace          time.Duration
}

// DefaultRevalidateEvery is the built-in revalidate_every. Re-checks are
// coalesced by session (one identity-provider call per session per
// interval), so the cost is live sessions per interval, whatever the number
// of tunnels: see docs/websockets.md for the measurement behind 1m.
const DefaultRevalidateEvery = time.Minute

// DefaultWebSocketPolicy is the built-in default policy.
func DefaultWebSocketPolicy() WebSocketPolicy {
	return WebSocketPolicy{
		MaxLifetime:      time.Hour,
		BindToSession:    true,
		RevalidateEvery:  DefaultRevalidateEvery,
		UnavailableGrace: 5 * time.Minute,
		IdleTimeout:      10 * time.Minute,
		ForwardCookies:   true,
		CloseGrace:       time.Second,
	}
}

// Apply returns base with the fields set in w overriding it. A nil w
// returns base unchanged.
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
	if w.AllowedOrigins != nil {
		p.AllowedOrigins = map[string]bool{}
		for _, o := range w.AllowedOrigins {
			u, err := url.Parse(o)
			if err != nil || u.Scheme == "" || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
				return p, fmt.Errorf("websocket.allowed_origins: %q is not an origin (scheme://host[:port])", o)
			}
			p.AllowedOrigins[strings.ToLower(u.Scheme+"://"+u.Host)] = true
		}
	}
	switch {
	case p.MaxLifetime < 0:
		return p, fmt.Errorf("websocket.max_lifetime must not be negative")
	case p.RevalidateEvery < 0:
		return p, fmt.Errorf("websocket.revalidate_every must not be negative")
	case p.IdleTimeout < 0:
		return p, fmt.Errorf("websocket.idle_timeout must not be negative")
	case p.MaxConnections < 0:
		return p, fmt.Errorf("websocket.max_connections must not be negative")
	case p.CloseGrace < 0:
		return p, fmt.Errorf("websocket.close_grace must not be negative")
	}
	return p, nil
}

// OriginAllowed reports whether an upgrade with the given Origin header may
// proceed: no list, no Origin (not a browser), or a listed origin.
func (p WebSocketPolicy) OriginAllowed(origin string) bool {
	if p.AllowedOrigins == nil || origin == "" {
		return true
	}
	return p.AllowedOrigins[strings.ToLower(strings.TrimSuffix(origin, "/"))]
}
