package tunnel

import (
	"crypto/rand"
	"errors"
	"runtime"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/gobwas/ws"
	"github.com/sirupsen/logrus"
)

// Reasons a tunnel ends, as passed to [Metrics.Closed] and logged.
const (
	ReasonMaxLifetime             = "max_lifetime"
	ReasonSessionExpired          = "session_expired"
	ReasonSessionRevoked          = "session_revoked"
	ReasonRevalidationUnavailable = "revalidation_unavailable"
	ReasonIdleTimeout             = "idle_timeout"
	ReasonShutdown                = "shutdown"
	ReasonClientClosed            = "client_closed"   // the client sent Close
	ReasonUpstreamClosed          = "upstream_closed" // the upstream sent Close
	ReasonClientGone              = "client_gone"     // the client's connection ended without Close
	ReasonUpstreamGone            = "upstream_gone"   // the upstream's connection ended without Close
	ReasonProtocolError           = "protocol_error"  // a peer sent a malformed frame
)

// closeCause is why a tunnel ends.
type closeCause struct {
	reason string        // metrics and log label
	code   ws.StatusCode // the Close the proxy sends both peers; 0: none
	text   string        // the Close reason the peers read
}

// The proxy's own closes. 1008 is "an endpoint is terminating the
// connection because it has received a message that violates its policy"
// (RFC 6455 section 7.4.1); 1001 is "an endpoint is going away, such as a
// server going down".
var (
	causeMaxLifetime             = closeCause{ReasonMaxLifetime, ws.StatusPolicyViolation, "max lifetime reached"}
	causeSessionExpired          = closeCause{ReasonSessionExpired, ws.StatusPolicyViolation, "session expired"}
	causeSessionRevoked          = closeCause{ReasonSessionRevoked, ws.StatusPolicyViolation, "session revoked"}
	causeRevalidationUnavailable = closeCause{ReasonRevalidationUnavailable, ws.StatusPolicyViolation, "session could not be revalidated"}
	causeIdleTimeout             = closeCause{ReasonIdleTimeout, ws.StatusPolicyViolation, "idle timeout"}
	causeShutdown                = closeCause{ReasonShutdown, ws.StatusGoingAway, "going away"}

	causeClientClosed   = closeCause{reason: ReasonClientClosed}
	causeUpstreamClosed = closeCause{reason: ReasonUpstreamClosed}
	causeClientGone     = closeCause{reason: ReasonClientGone}
	causeUpstreamGone   = closeCause{reason: ReasonUpstreamGone}
	causeProtocolError  = closeCause{reason: ReasonProtocolError}
)

// tunnel is one open client/upstream pair.
type tunnel struct {
	binding                     // lastActive: the last read either way
	origin  string              // the client's Origin header
	closed  func(reason string) // Request.Closed

	client, upstream endpoint
	up, down         pump // client to upstream, upstream to client

	closeDecided atomic.Bool  // beginClose ran: splices stop (see pump.splice)
	clientShut   atomic.Bool  // the client's connection was closed after its Close handshake
	pumps        atomic.Int32 // directions still running

	// Guarded by binding.mu.
	timer    *time.Timer // once closing, the end of the close grace (deadlines are on the wheel)
	graceEnd time.Time   // when closing: the end of the close grace
	cause    *closeCause // first reason the tunnel began to end
	closing  bool        // a Close was sent or relayed
	torn     bool        // both connections are closed
	peerCode ws.StatusCode
}

// open starts the tunnel between the upgraded client and upstream.
func (t *Server) open(req Request, up *dialed, cl *upgraded, remote, origin string) {
	now := time.Now()
	tun := &tunnel{origin: origin, closed: req.Closed}
	tun.bind(t, req.RuleID, req.Policy, req.Session, remote, now)

	tun.client.setConn(cl.conn)
	tun.client.client = true
	tun.upstream.setConn(up.conn)
	var ext ws.State
	if len(up.hs.Extensions) > 0 {
		ext = ws.StateExtended
	}
	tun.up = pump{t: tun, src: &tun.client, dst: &tun.upstream, state: ws.StateServerSide | ext}
	tun.down = pump{t: tun, src: &tun.upstream, dst: &tun.client, state: ws.StateClientSide | ext}
	tun.up.win, tun.up.w = cl.pending, len(cl.pending)
	tun.down.win, tun.down.w = up.pending, len(up.pending)
	tun.up.lastReport, tun.down.lastReport = now.UnixNano(), now.UnixNano()
	tun.pumps.Store(2)

	serving := t.register(tun)
	if tun.rechecked() {
		t.checks.join(tun, recheckKey(tun.authenticator, tun.keys, tun.id))
	}
	t.m.Opened(tun.rule)
	tun.mu.Lock()
	tun.scheduleLocked()
	tun.mu.Unlock()
	go tun.up.loop()
	go tun.down.loop()
	if !serving {
		tun.beginClose(&causeShutdown, time.Time{})
	}
}

// Revoke implements [LiveChannel]: the tunnel ends with 1008 and reason
// (cut to fit a Close frame), ReasonSessionRevoked in logs and metrics.
func (t *tunnel) Revoke(reason string) {
	t.beginClose(revokeCause(closeReasonText(reason)), time.Time{})
}

// closeReasonText cuts s to the 123 bytes a Close frame's reason may hold
// (RFC 6455 section 5.5: control frame payloads are at most 125 bytes, two
// of which are the code), at a UTF-8 boundary: "the data MUST be UTF-8".
func closeReasonText(s string) string {
	const limit = ws.MaxControlFramePayloadSize - 2
	if len(s) <= limit {
		return s
	}
	s = s[:limit]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}

// Describe implements [LiveChannel].
func (t *tunnel) Describe() ChannelInfo {
	return t.describe(ChannelInfo{Kind: "websocket", Origin: t.origin,
		BytesToUpstream: t.up.shown.Load(), BytesToClient: t.down.shown.Load()})
}

// loop runs one direction and ends the tunnel when it stops.
func (p *pump) loop() {
	err := p.run()
	p.report(time.Now().UnixNano())
	p.t.pumpDone(p, err)
}

// beginClose ends the tunnel on the proxy's initiative: a Close frame with
// c's code and reason goes to the client (unmasked) and to the upstream
// (masked), each between two frames; the peers' replies are awaited for the
// close grace, then both connections are closed. deadline, when not zero,
// is the instant the close was due.
func (t *tunnel) beginClose(c *closeCause, deadline time.Time) {
	t.mu.Lock()
	if t.closing || t.torn {
		t.mu.Unlock()
		return
	}
	t.decideCloseLocked(c)
	t.mu.Unlock()

	// A frame being spliced would hold a peer's write lock until it ends
	// (and the peer go on receiving it): splices stop now, mid-frame (see
	// pump.splice). The download direction stops before the client's
	// Close is due (which then cannot be sent inside that frame); the
	// upload direction after it, so the client hears why first.
	t.closeDecided.Store(true)
	t.down.interruptSplice()
	t.sendClose(&t.client, c)
	if !deadline.IsZero() {
		t.owner.dm.DeadlineClose(t.rule, c.reason, time.Since(deadline))
	}
	// Tunnels closing together (a revocation, a shutdown) close at once:
	// let the others send their client's Close before this one writes to
	// its upstream, so the side that waits for an answer hears first.
	runtime.Gosched()
	t.closeRest(c)
}

// decideCloseLocked marks the tunnel closing for c and bounds the close;
// t.mu is held and the tunnel is neither closing nor torn.
func (t *tunnel) decideCloseLocked(c *closeCause) {
	t.closing = true
	if t.cause == nil {
		t.cause = c
	}
	// Writing the Close frames waits for a frame in flight to end and for
	// the peer to take the bytes; closeSendLimit bounds both.
	t.armLocked(max(t.policy.CloseGrace, closeSendLimit))
}

// closeRest is the close after the client's Close frame: the upstream's
// Close, then the close grace for the replies (or the teardown at once).
func (t *tunnel) closeRest(c *closeCause) {
	t.up.interruptSplice()
	t.sendClose(&t.upstream, c)

	// The grace for the replies counts from here, however long a busy
	// process took to get the frames out.
	t.mu.Lock()
	grace := t.policy.CloseGrace
	if grace > 0 && !t.torn {
		t.armLocked(grace)
	}
	t.mu.Unlock()
	if grace <= 0 {
		t.teardown(c)
		return
	}
	t.checkClientDone()
}

// closeSendLimit bounds how long the proxy's Close frames may take to go
// out (a frame in flight that does not end, a peer that reads nothing)
// before both connections are closed anyway.
const closeSendLimit = 5 * time.Second

// armLocked takes the tunnel off the wheel and sets its timer to the end
// of the closing handshake, d from now; t.mu is held.
func (t *tunnel) armLocked(d time.Duration) {
	t.owner.wheel.Remove(t)
	t.graceEnd = time.Now().Add(d)
	if t.timer == nil {
		t.timer = time.AfterFunc(d, t.onTimer)
	} else {
		t.timer.Reset(d)
	}
}

// sendClose writes the proxy's Close frame to e unless e already had one.
// It waits for a frame being written to e to end.
func (t *tunnel) sendClose(e *endpoint, c *closeCause) {
	var buf [closeFrameMax]byte
	frame := closeFrame(buf[:0], c, !e.client)
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closeSent.Load() {
		return
	}
	e.closeSent.Store(true)
	_, _ = e.conn.Write(frame)
}

// closeFrameMax is the size of the largest Close frame: a masked header
// and 125 bytes of payload.
const closeFrameMax = 2 + 4 + ws.MaxControlFramePayloadSize

// closeFrame appends to b a Close frame with c's code and reason. Frames to
// the upstream are masked with a key from crypto/rand: "The masking key
// needs to be unpredictable" (RFC 6455 section 5.3).
func closeFrame(b []byte, c *closeCause, masked bool) []byte {
	n := min(2+len(c.text), ws.MaxControlFramePayloadSize)
	b = append(b, 0x80|byte(ws.OpClose), byte(n))
	var key [4]byte
	if masked {
		b[1] |= 0x80
		_, _ = rand.Read(key[:])
		b = append(b, key[:]...)
	}
	start := len(b)
	b = append(b, byte(c.code>>8), byte(c.code))
	b = append(b, c.text[:n-2]...)
	if masked {
		ws.Cipher(b[start:], key, 0)
	}
	return b
}

// noteCloser records that src sent a Close, unless the tunnel already has
// a reason to end: the peer that closed first names the reason.
func (t *tunnel) noteCloser(src *endpoint, code ws.StatusCode) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.peerCode == 0 {
		t.peerCode = code
	}
	if t.cause == nil {
		t.cause = &causeUpstreamClosed
		if src.client {
			t.cause = &causeClientClosed
		}
	}
}

// peerClosed is called when src sent a Close frame, after it was relayed
// (or dropped, when the other peer already had one). The first Close starts
// the close grace.
func (t *tunnel) peerClosed() {
	t.mu.Lock()
	teardown := false
	if !t.closing && !t.torn {
		// The other peer has the grace to answer.
		t.closing = true
		t.stopTimerLocked()
		if teardown = t.policy.CloseGrace <= 0; !teardown {
			t.armLocked(t.policy.CloseGrace)
		}
	}
	t.mu.Unlock()
	if teardown {
		t.teardown(nil)
		return
	}
	t.checkClientDone()
}

// An endpoint that sent and received a Close has completed its closing
// handshake: its connection ends normally. The proxy is the client's
// server and closes that connection first (RFC 6455 section 7.1.1); the
// upstream, as server, closes its own and the upstream direction ends on
// its EOF. The tunnel is over when both directions are; the close grace
// cuts off a peer that takes longer.

// done reports whether e completed its closing handshake.
func (e *endpoint) done() bool { return e.closeSent.Load() && e.closeRecv.Load() }

// checkClientDone closes the client's connection once its closing
// handshake is complete.
func (t *tunnel) checkClientDone() {
	if t.client.done() && t.clientShut.CompareAndSwap(false, true) {
		_ = t.client.conn.Close()
	}
}

// teardown closes both connections; c is the reason unless one was set.
func (t *tunnel) teardown(c *closeCause) {
	t.mu.Lock()
	if t.torn {
		t.mu.Unlock()
		return
	}
	t.torn = true
	if t.cause == nil {
		t.cause = c
	}
	t.stopTimerLocked()
	t.mu.Unlock()
	_ = t.client.conn.Close()
	_ = t.upstream.conn.Close()
}

// pumpDone is called when a direction stopped with err.
func (t *tunnel) pumpDone(p *pump, err error) {
	if !p.src.done() {
		// Not a normal end: the peer vanished or misbehaved.
		t.teardown(causeOf(err))
	}
	if t.pumps.Add(-1) == 0 {
		t.finish()
	}
}

// causeOf names the reason a direction stopped.
func causeOf(err error) *closeCause {
	var re *relayError
	switch {
	case errors.Is(err, errProtocol):
		return &causeProtocolError
	case errors.As(err, &re) && re.side.client:
		return &causeClientGone
	default:
		return &causeUpstreamGone
	}
}

// finish accounts for an ended tunnel: one log line, the metrics and the
// connection slot.
func (t *tunnel) finish() {
	t.teardown(&causeUpstreamGone)
	t.mu.Lock()
	c, code := t.cause, t.peerCode
	t.mu.Unlock()
	life := time.Since(t.start)
	t.owner.m.Closed(t.rule, c.reason, life)
	if t.closed != nil {
		t.closed(c.reason)
	}
	f := logrus.Fields{
		"rule":              t.rule,
		"subject":           t.subject,
		"reason":            c.reason,
		"duration_ms":       life.Milliseconds(),
		"bytes_to_upstream": t.up.relayed,
		"bytes_to_client":   t.down.relayed,
	}
	if code != 0 {
		f["peer_close_code"] = int(code)
	}
	t.owner.log.WithFields(f).Info("websocket tunnel closed")
	// Last: Shutdown returns once every tunnel is unregistered.
	t.owner.unregister(t)
}

// bound implements recheckMember.
func (t *tunnel) bound() *binding { return &t.binding }

// stopTimerLocked takes the tunnel off the wheel and stops the close
// grace timer; t.mu is held.
func (t *tunnel) stopTimerLocked() {
	t.owner.wheel.Remove(t)
	if t.timer != nil {
		t.timer.Stop()
	}
}

// onTimer ends the close grace: both connections are closed.
func (t *tunnel) onTimer() {
	now := time.Now()
	t.mu.Lock()
	if t.torn || !t.closing {
		t.mu.Unlock()
		return
	}
	// Over, unless the timer was re-armed after this call was already on
	// its way.
	if now.Before(t.graceEnd) {
		t.timer.Reset(t.graceEnd.Sub(now))
		t.mu.Unlock()
		return
	}
	t.mu.Unlock()
	t.teardown(nil)
}
