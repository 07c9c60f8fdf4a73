package tunnel

import "time"

// Metrics receives the measurements of the tunnels and streams.
// Implementations must be safe for concurrent use and cheap: Relayed is
// called up to about once a second per busy direction of every tunnel.
type Metrics interface {
	// Handshake records one upgrade handed to the tunnel, its outcome and
	// how long it took until the client had its answer. Results: "ok",
	// "bad_handshake", "origin_refused", "over_capacity", "shutting_down",
	// "upstream_refused" (a non-101 answer), "upstream_bad_handshake" (an
	// invalid 101), "upstream_unreachable", "upstream_timeout" and
	// "client_failed" (the client went away during the handshake or the
	// 101 could not be written to it).
	Handshake(rule, result string, d time.Duration)
	// Opened is called when a tunnel is established or a stream governed
	// (active +1).
	Opened(rule string)
	// Closed is called once when a tunnel or stream ends (active -1) with
	// the reason (see the reason constants, e.g. [ReasonMaxLifetime]) and
	// its lifetime.
	Closed(rule, reason string, lifetime time.Duration)
	// Relayed adds n bytes (frame headers included) relayed in direction
	// dir: [DirToUpstream] or [DirToClient].
	Relayed(rule, dir string, n int64)
}

// DeadlineMetrics is implemented by [Metrics] that also want to know
// how late deadline closes are.
type DeadlineMetrics interface {
	// DeadlineClose records how long after a deadline (max lifetime,
	// session expiry, idle timeout; reason as for Closed) the proxy's
	// Close frame was written to the client: growing values mean the
	// proxy is too busy to keep its deadlines. late is negative — the
	// earliest side of the figure — when a burst of fixed deadlines (max
	// lifetime, session expiry) started ahead of them, and then never
	// below -Options.CloseLead; for an idle timeout it is never negative.
	DeadlineClose(rule, reason string, late time.Duration)
}

// HandshakeResults lists every result [Metrics.Handshake] is given,
// so that metrics can start each at zero.
func HandshakeResults() []string {
	return []string{"ok", "bad_handshake", "origin_refused", "over_capacity", "shutting_down",
		"upstream_refused", "upstream_bad_handshake", "upstream_unreachable", "upstream_timeout", "client_failed"}
}

// CloseReasons lists every reason [Metrics.Closed] is given.
func CloseReasons() []string {
	return []string{ReasonMaxLifetime, ReasonSessionExpired, ReasonSessionRevoked, ReasonRevalidationUnavailable,
		ReasonAccessRevoked, ReasonAuthorizationUnavailable, ReasonRuleChanged,
		ReasonIdleTimeout, ReasonShutdown, ReasonClientClosed, ReasonUpstreamClosed, ReasonClientGone,
		ReasonUpstreamGone, ReasonProtocolError}
}

// DeadlineReasons lists the reasons [DeadlineMetrics.DeadlineClose] is
// given: the closes that fall due at a deadline.
func DeadlineReasons() []string {
	return []string{ReasonMaxLifetime, ReasonSessionExpired, ReasonIdleTimeout}
}

// Directions lists the directions [Metrics.Relayed] is given.
func Directions() []string { return []string{DirToUpstream, DirToClient} }

// Directions of relayed bytes, as passed to [Metrics.Relayed].
const (
	DirToUpstream = "to_upstream"
	DirToClient   = "to_client"
)

// NopMetrics counts nothing; it is the default [Metrics].
type NopMetrics struct{}

// Handshake implements [Metrics].
func (NopMetrics) Handshake(string, string, time.Duration) {}

// Opened implements [Metrics].
func (NopMetrics) Opened(string) {}

// Closed implements [Metrics].
func (NopMetrics) Closed(string, string, time.Duration) {}

// Relayed implements [Metrics].
func (NopMetrics) Relayed(string, string, int64) {}

// DeadlineClose implements [DeadlineMetrics].
func (NopMetrics) DeadlineClose(string, string, time.Duration) {}
