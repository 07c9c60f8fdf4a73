package tunnel

import (
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/portcullis-proxy/portcullis/pipeline"
)

// Request is an authorised WebSocket upgrade handed to [Server]: the
// pipeline has run and allowed it.
type Request struct {
	// RuleID names the rule that matched; it labels metrics and logs and
	// scopes Policy.MaxConnections.
	RuleID string
	// Policy is the rule's resolved WebSocket policy (lifetime, origins,
	// cookies, connection cap, close grace).
	Policy pipeline.WebSocketPolicy
	// Rule, when set, is the compiled rule RuleID and Policy come from:
	// the tunnel is then re-authorized through it at its re-checks
	// (Policy.Reauthorize) and follows rules reloads
	// ([Server.FollowRules]). Unset means nil: a nil *rules.Compiled in
	// it is a set rule, and must not be passed.
	Rule pipeline.ChannelRule
	// Session is what the pipeline learnt: Subject, ExpiresAt, Revalidator
	// and Scrub (Subprotocols and SubprotocolPrefixes: token carriers never
	// sent upstream nor echoed); with Rule, its MatchContext (the request
	// as matched) and Extra (what a session without a Revalidator is
	// re-authorized with).
	// The tunnel keeps only those fields, not the session itself.
	Session *pipeline.Session
	// Upstream is the request as it would go upstream: URL scheme http or
	// https (dialled as ws or wss; ws and wss are accepted as well), Host as
	// the rule's preserve_host decided, the client's end-to-end headers with
	// mutator headers applied and credential carriers removed. The client's
	// Sec-WebSocket-Protocol, Sec-WebSocket-Extensions, Origin and Cookie
	// headers are still present: the tunnel filters and forwards them.
	Upstream *http.Request
	// Closed, when set, is called once when an established tunnel ends,
	// with its close reason (see the reason constants); a refused upgrade
	// never calls it. Tracing ends the tunnel's span with it.
	Closed func(reason string)
}

// Options configures [Server]. Zero fields take the documented
// defaults.
type Options struct {
	// Log receives one line per tunnel end and refusals; nil discards.
	Log logrus.FieldLogger
	// DialTimeout bounds the TCP (and TLS) connect to the upstream
	// (default 10s).
	DialTimeout time.Duration
	// HandshakeTimeout bounds, once connected, the upstream's TLS
	// handshake and its answer to the upgrade request, and the write of the
	// 101 answer to the client (default 10s).
	HandshakeTimeout time.Duration
	// RevalidateTimeout bounds one re-validation of the session (default
	// 10s). A re-validation that times out counts as the identity provider
	// being unavailable.
	RevalidateTimeout time.Duration
	// TLSConfig is used for wss (https) upstreams; nil uses the system
	// roots. Its ServerName, when empty, is the upstream URL's host name.
	TLSConfig *tls.Config
	// Metrics counts tunnels, close reasons, bytes and handshake latency;
	// nil counts nothing. When it also implements [DeadlineMetrics], it
	// learns how late deadline closes are.
	Metrics Metrics
	// Registry indexes the open tunnels and streams for revocation and the
	// admin API; nil gives the Server a registry of its own
	// ([Server.Registry]). The process's revocation service closes
	// channels through it.
	Registry *Registry
	// Revocations is asked about every upgrade (a revoked session or
	// subject is refused with 401) and told about every re-check that
	// found a session rejected; nil: no revocation service.
	Revocations Revocations
	// SpliceMin is the payload left in a frame from which the relay
	// splices it between two plain TCP connections (socket to pipe to
	// socket, no copy through the process) rather than reading and
	// writing it (default [DefaultSpliceMin]); negative never splices.
	SpliceMin int64
	// Relay is how the tunnels' directions wait for data: a goroutine each
	// ([RelayGoroutines], the default), or parked on epoll while idle
	// ([RelayPoll]).
	Relay Relay
	// CloseLead bounds how early the Close of a fixed deadline (max
	// lifetime, session expiry) may be written when at least 256 channels
	// share it (within 10 ms): such a burst starts ahead of its deadline by
	// the estimated time of its Close writes, so that the last lands at the
	// deadline rather than after it, and no Close goes out more than
	// CloseLead early (default [DefaultCloseLead]); negative: never early.
	// Idle timeouts and revocations are never early (docs/websockets.md,
	// "Many tunnels at one deadline").
	CloseLead time.Duration
}

// Revocations is what the tunnels need of the process's revocation
// service. Implementations must be safe for concurrent use and Revoked must
// be cheap: it runs on every upgrade.
type Revocations interface {
	// Revoked reports whether the session (by id) or the subject was
	// revoked and is still remembered.
	Revoked(sessionID, subject string) bool
	// Rejected reports that a re-check found the credential of the session
	// rejected by the identity provider. The tunnels of the session on this
	// process are closed already; the service tells the other replicas.
	Rejected(sessionID, subject, rule string)
}

// Server serves authorised WebSocket upgrades as session-bound tunnels,
// governs streaming responses the same way, and keeps track of both:
// http.Server.Shutdown does not wait for hijacked connections, so the
// server's owner calls [Server.Shutdown] as well.
//
// A tunnel relays frames verbatim in both directions and ends, with a Close
// frame 1008 and a reason to both peers, at the first of: max lifetime,
// session expiry (bind_to_session), a revocation, a re-validation that
// rejects the credential (or cannot reach the identity provider, unless
// tolerated) and idle timeout. See [Server.ServeTunnel] and
// [Server.GovernStream]. A Server is safe for concurrent use.
type Server struct {
	opts Options
	log  logrus.FieldLogger
	m    Metrics
	dm   DeadlineMetrics

	wheel  *deadlineWheel
	poll   *poller // the poll relay's; nil: RelayGoroutines
	reg    *Registry
	rev    Revocations
	checks rechecks
	// followed is the rule set the last FollowRules was given (nil: none
	// yet); channels that register re-evaluate against it (catchUp).
	followed atomic.Pointer[followedRules]

	mu       sync.Mutex
	live     map[*tunnel]struct{}
	streams  map[*stream]struct{} // governed streams not yet closed
	perRule  map[string]int       // admitted tunnels (dialling or open) by rule
	admitted int                  // admitted tunnels in all
	shutting bool
	drained  chan struct{} // closed when shutting and live is empty
	signaled bool          // drained is closed
	active   atomic.Int64
}

// Defaults of [Options].
const (
	DefaultDialTimeout       = 10 * time.Second
	DefaultHandshakeTimeout  = 10 * time.Second
	DefaultRevalidateTimeout = 10 * time.Second
	// DefaultSpliceMin is the splice threshold when Options.SpliceMin is
	// zero.
	DefaultSpliceMin int64 = 256 << 10
)

// New returns a tunnel server configured by opts. New copies opts, and the
// server never changes it afterwards.
func New(opts Options) *Server {
	if opts.DialTimeout <= 0 {
		opts.DialTimeout = DefaultDialTimeout
	}
	if opts.HandshakeTimeout <= 0 {
		opts.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if opts.RevalidateTimeout <= 0 {
		opts.RevalidateTimeout = DefaultRevalidateTimeout
	}
	if opts.SpliceMin == 0 {
		opts.SpliceMin = DefaultSpliceMin
	}
	if opts.CloseLead == 0 {
		opts.CloseLead = DefaultCloseLead
	}
	t := &Server{
		opts:    opts,
		log:     opts.Log,
		m:       opts.Metrics,
		live:    map[*tunnel]struct{}{},
		streams: map[*stream]struct{}{},
		perRule: map[string]int{},
		drained: make(chan struct{}),
		reg:     opts.Registry,
		rev:     opts.Revocations,
		wheel:   newLeadWheel(opts.CloseLead),
	}
	if opts.Relay == RelayPoll {
		t.poll = newPoller()
	}
	if t.reg == nil {
		t.reg = NewRegistry()
	}
	t.checks = rechecks{owner: t, groups: map[string]*recheckGroup{}}
	if t.log == nil {
		l := logrus.New()
		l.Out = io.Discard
		t.log = l
	}
	if t.m == nil {
		t.m = NopMetrics{}
	}
	t.dm, _ = t.m.(DeadlineMetrics)
	if t.dm == nil {
		t.dm = NopMetrics{}
	}
	return t
}

// selfOrigin is the request's own origin for the same-origin check: the
// scheme and host of r.URL when it is absolute (the proxy handler makes it
// so, with the scheme and host it believes: the connection's, or a trusted
// load balancer's), else the connection's scheme and the Host header.
func selfOrigin(r *http.Request) string {
	if r.URL.IsAbs() && r.URL.Host != "" {
		return pipeline.NormalizeOrigin(r.URL.Scheme, r.URL.Host)
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	if r.Host == "" {
		return ""
	}
	return pipeline.NormalizeOrigin(scheme, r.Host)
}

// ServeTunnel opens a tunnel for the authorised upgrade request r (not yet
// hijacked) as described by req.
//
// Before anything is upgraded it refuses, as plain HTTP with a JSON error
// body: a malformed WebSocket handshake (400, or 426 for another version),
// a browser Origin that is not the request's own nor in
// Policy.AllowedOrigins, or several Origin headers (403: cross-site
// WebSocket hijacking), a rule at Policy.MaxConnections or a server shutting down
// (503). It then dials the upstream first, so that an upstream refusing the
// upgrade is answered with the upstream's status (502 if that status is not
// an error) and an unreachable one with 502 (504 on timeout): the client is
// never left with a half-open upgrade. Only then is the client upgraded,
// with the upstream's chosen subprotocol and extensions and the other
// headers of the upstream's 101 (such as Set-Cookie).
//
// ServeTunnel returns once the tunnel is established or refused; the tunnel
// runs on until it ends, in two goroutines of its own (one per direction),
// or with [RelayPoll] on goroutines borrowed while it has data to relay.
// r's context is not used after ServeTunnel returns.
func (t *Server) ServeTunnel(w http.ResponseWriter, r *http.Request, req Request) {
	start := time.Now()
	if status, msg := checkClientHandshake(r); status != 0 {
		t.refuse(w, req, start, "bad_handshake", status, msg)
		return
	}
	if s := req.Session; s != nil && t.rev != nil && t.rev.Revoked(s.SessionID, s.Subject) {
		// A session revoked here or on another replica, which a session
		// cache or a still-valid token would otherwise let in again.
		t.refuse(w, req, start, "revoked", http.StatusUnauthorized, "session revoked")
		return
	}
	if !req.Policy.OriginAllowed(r.Header.Values("Origin"), selfOrigin(r)) {
		t.refuse(w, req, start, "origin_refused", http.StatusForbidden, "origin not allowed")
		return
	}
	if result, ok := t.admit(req.RuleID, req.Policy.MaxConnections); !ok {
		msg := "too many WebSocket connections"
		if result == "shutting_down" {
			msg = "shutting down"
		}
		t.refuse(w, req, start, result, http.StatusServiceUnavailable, msg)
		return
	}
	admitted := true
	defer func() {
		if admitted {
			t.release(req.RuleID)
		}
	}()

	up, err := t.dialUpstream(r.Context(), req)
	if err != nil && r.Context().Err() != nil {
		// The client went away while the upstream was dialled.
		t.m.Handshake(req.RuleID, "client_failed", time.Since(start))
		return
	}
	if err != nil {
		result, status, msg := classifyDialError(err)
		t.log.WithFields(logrus.Fields{"rule": req.RuleID, "error": err.Error()}).Info("websocket upstream refused or unreachable")
		t.refuse(w, req, start, result, status, msg)
		return
	}
	cl, err := t.upgradeClient(w, r, up)
	if err != nil {
		up.conn.Close()
		t.m.Handshake(req.RuleID, "client_failed", time.Since(start))
		t.log.WithFields(logrus.Fields{"rule": req.RuleID, "error": err.Error()}).Info("websocket client upgrade failed")
		return
	}
	t.m.Handshake(req.RuleID, "ok", time.Since(start))
	admitted = false // the tunnel releases its slot when it ends
	t.open(req, up, cl, r.RemoteAddr, r.Header.Get("Origin"))
}

// refuse answers an upgrade that will not be served, before any upgrade.
func (t *Server) refuse(w http.ResponseWriter, req Request, start time.Time, result string, status int, msg string) {
	e := pipeline.NewError(status, msg, nil)
	if status == http.StatusUpgradeRequired {
		e.Header = http.Header{"Sec-Websocket-Version": {"13"}}
	}
	pipeline.WriteError(w, e, false)
	t.m.Handshake(req.RuleID, result, time.Since(start))
}

// admit reserves a connection slot of the rule, or reports why not.
func (t *Server) admit(rule string, limit int) (result string, ok bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.shutting {
		return "shutting_down", false
	}
	if limit > 0 && t.perRule[rule] >= limit {
		return "over_capacity", false
	}
	t.perRule[rule]++
	t.admitted++
	return "", true
}

// release frees a slot taken by admit.
func (t *Server) release(rule string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.freeSlotLocked(rule)
}

// freeSlotLocked gives back a slot taken by admit; t.mu is held.
func (t *Server) freeSlotLocked(rule string) {
	if t.perRule[rule]--; t.perRule[rule] <= 0 {
		delete(t.perRule, rule)
	}
	t.admitted--
	t.signalDrainedLocked()
}

// register adds an established tunnel, to the registry as well; it reports
// false when the server began shutting down meanwhile (the tunnel is still
// tracked, and the caller closes it with 1001).
func (t *Server) register(tun *tunnel) bool {
	tun.id = t.reg.Add(tun, tun.keys)
	t.mu.Lock()
	defer t.mu.Unlock()
	t.live[tun] = struct{}{}
	t.active.Add(1)
	return !t.shutting
}

// govern puts a channel just registered — a tunnel or a stream, not yet
// shared with another goroutine — on the timers that govern it: it joins
// its session's re-check group when its rule asks for re-checks, counts as
// opened, and goes on the wheel at its next deadline.
func (t *Server) govern(m recheckMember) {
	b := m.bound()
	if b.rechecksLocked() {
		t.checks.join(m)
	}
	t.m.Opened(b.rule)
	b.mu.Lock()
	m.scheduleLocked()
	b.mu.Unlock()
}

// unregister removes an ended tunnel, from the registry and its re-check
// group as well, and frees its slot. Every way a tunnel ends comes here.
func (t *Server) unregister(tun *tunnel) {
	t.reg.Remove(tun.id)
	t.checks.leave(tun)
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.live[tun]; !ok {
		return
	}
	delete(t.live, tun)
	t.active.Add(-1)
	t.freeSlotLocked(tun.rule)
}

// Registry returns the registry the open tunnels are indexed in.
func (t *Server) Registry() *Registry { return t.reg }

// signalDrainedLocked closes drained once shutting and no tunnel is left,
// open or still in its handshake; t.mu is held.
func (t *Server) signalDrainedLocked() {
	if t.shutting && t.admitted == 0 && len(t.streams) == 0 && !t.signaled {
		t.signaled = true
		close(t.drained)
	}
}

// Active returns the number of open tunnels.
func (t *Server) Active() int { return int(t.active.Load()) }

// Shutdown refuses new upgrades (503), ends every governed stream (new
// ones end at once), sends every open tunnel a Close frame 1001 ("going
// away") in both directions (tunnels still in their handshake get theirs
// once open) and waits until all tunnels and streams are gone or ctx
// ends. The ends are one batch: every client's Close frame (or stream's
// end) first, then the upstreams' and the rest. Each tunnel waits at most
// its rule's close grace for the peers' Close replies. When ctx ends
// first, the remaining connections are closed at once and ctx's error is
// returned.
func (t *Server) Shutdown(ctx context.Context) error {
	t.mu.Lock()
	t.shutting = true
	t.signalDrainedLocked()
	ends := make([]ending, 0, len(t.live)+len(t.streams))
	for tun := range t.live {
		ends = append(ends, ending{ch: tun, c: &causeShutdown})
	}
	for st := range t.streams {
		// Streams end at once; the server's own shutdown waits for
		// their handlers.
		ends = append(ends, ending{ch: st, c: &causeShutdown})
	}
	t.mu.Unlock()

	t.endAll(ends)
	select {
	case <-t.drained:
		return nil
	case <-ctx.Done():
	}
	t.mu.Lock()
	open := make([]*tunnel, 0, len(t.live))
	for tun := range t.live {
		open = append(open, tun)
	}
	t.mu.Unlock()
	for _, tun := range open {
		tun.teardown(&causeShutdown)
	}
	return ctx.Err()
}
