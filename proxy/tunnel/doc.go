// Package tunnel serves the live channels of authorised requests: WebSocket
// tunnels and session-bound streams. The proxy handler runs the pipeline;
// what it allowed is handed to a [Server] — an upgrade to
// [Server.ServeTunnel] with a [Request], a streaming response to
// [Server.GovernStream] with a [StreamRequest] — and from then on the
// channel lives under its rule's policy (the websocket block), bound to the
// session that opened it.
//
// The contract:
//
//   - Admission: a malformed handshake, a foreign Origin, a rule at its
//     connection cap, a revoked session or a server shutting down is
//     refused as plain HTTP with a JSON error before anything is upgraded.
//     The upstream is dialled before the client is answered, so an upstream
//     that refuses or cannot be reached gives the client an HTTP error,
//     never a half-open upgrade.
//   - Relay: frames pass verbatim in both directions (masks and RSV bits
//     untouched, extensions end to end); nothing is buffered while waiting
//     for a frame; the proxy's own Close frames go between frames.
//     Options.Relay picks how a direction waits for its next bytes — a
//     goroutine each ([RelayGoroutines], the default) or parked on epoll
//     with no goroutine ([RelayPoll]) — with the same frame state machine
//     and the same contract either way.
//   - Ending: at the first of max lifetime, session expiry
//     (bind_to_session), a revocation, a re-check that rejects the
//     credential (or cannot reach the identity provider, unless tolerated),
//     a re-authorization the rule's authorizer denies (or cannot answer,
//     unless tolerated), a rules reload that removed or replaced the rule,
//     idle timeout and shutdown, the client gets a Close 1008 (1001 on
//     shutdown) and a reason first, then the upstream; the peers' replies
//     are awaited for the close grace. A stream gets a final event (event
//     streams) or is aborted, never ended as if complete. Channels the
//     proxy ends together — deadlines due at one instant, a revocation
//     matching many, a re-check rejecting a session, shutdown — end in
//     one batch: every client's Close (or stream's end) first, then the
//     rest of each close. A burst of at least 256 fixed deadlines (max
//     lifetime, session expiry) within 10 ms starts ahead of them by the
//     measured time of its Close writes, never more than Options.CloseLead
//     (default 100 ms), so that its last Close lands at the deadline;
//     other closes are never early.
//   - Re-checks: the channels of one session share one re-validation per
//     interval, whatever their number; with reauthorize, the rule's
//     authorizer is then asked once per decision (rule, method, URL) with
//     the session as the identity provider describes it now.
//   - Reloads: [Server.FollowRules] re-evaluates the channels against a
//     new rule set; a channel whose rule is unchanged is not touched.
//   - Registry: every channel is in the [Registry] from the moment it is
//     established until it has ended, whichever way it ended, indexed by
//     session id, subject, rule and credential hash; the admin API lists
//     it and revocations close through it.
//   - Shutdown: http.Server.Shutdown does not wait for hijacked
//     connections; the server's owner calls [Server.Shutdown] as well.
//
// The package imports only pipeline: it reads the rule's policy
// ([pipeline.WebSocketPolicy]) and the session ([pipeline.Session]), runs
// the rule's authorizer again through the compiled rule it was handed
// ([pipeline.ChannelRule], implemented by rules.Compiled), and follows a
// new rule set through [pipeline.ChannelRules]; it never imports rules or
// a handler. Options are applied once, in [New]; nothing is initialised
// on first use and the package has no mutable state of its own.
package tunnel
