package tunnel

import (
	"crypto/rand"
	"errors"
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
	text   string        // the Close reason the peers read (a stream's final event carries all of it)
	// frame is the Close frame to the client (unmasked), encoded once for
	// every tunnel the cause ends; nil: encoded when written.
	frame []byte
}

// proxyCause is a cause of the proxy's own with its client Close frame
// encoded.
func proxyCause(reason string, code ws.StatusCode, text string) closeCause {
	c := closeCause{reason: reason, code: code, text: text}
	c.frame = closeFrame(nil, &c, false)
	return c
}

// clientFrame returns the Close frame to the client for c. The bytes are
// shared: they must not be changed.
func (c *closeCause) clientFrame() []byte {
	if c.frame != nil {
		return c.frame
	}
	return closeFrame(nil, c, false)
}

// The proxy's own closes. 1008 is "an endpoint is terminating the
// connection because it has received a message that violates its policy"
// (RFC 6455 section 7.4.1); 1001 is "an endpoint is going away, such as a
// server going down".
var (
	causeMaxLifetime             = proxyCause(ReasonMaxLifetime, ws.StatusPolicyViolation, "max lifetime reached")
	causeSessionExpired          = proxyCause(ReasonSessionExpired, ws.StatusPolicyViolation, "session expired")
	causeSessionRevoked          = proxyCause(ReasonSessionRevoked, ws.StatusPolicyViolation, "session revoked")
	causeRevalidationUnavailable = proxyCause(ReasonRevalidationUnavailable, ws.StatusPolicyViolation, "session could not be revalidated")
	causeIdleTimeout             = proxyCause(ReasonIdleTimeout, ws.StatusPolicyViolation, "idle timeout")
	causeShutdown                = proxyCause(ReasonShutdown, ws.StatusGoingAway, "going away")

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

	closeDecided atomic.Bool  // the proxy decided to close (firstStep): splices stop (see pump.splice)
	clientShut   atomic.Bool  // the client's connection was closed after its Close handshake
	pumps        atomic.Int32 // directions still running

	// Guarded by binding.mu.
	graceEnd time.Time   // when closing: the end of the close grace, when the wheel entry is due
	cause    *closeCause // first reason the tunnel began to end
	closing  bool        // a Close was sent or relayed
	torn     bool        // both connections are closed
	peerCode ws.StatusCode
}

// open starts the tunnel between the upgraded client and upstream.
func (t *Server) open(req Request, up *dialed, cl *upgraded, remote, origin string) {
	now := time.Now()
	tun := &tunnel{origin: origin, closed: req.Closed}
	tun.bind(t, req.RuleID, req.Policy, req.Rule, req.Session, remote, now)

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
	t.govern(tun)
	tun.up.start()
	tun.down.start()
	t.catchUp(tun)
	if !serving {
		tun.beginClose(&causeShutdown, time.Time{})
	}
}

// Revoke implements [LiveChannel]: the tunnel ends with 1008 and reason
// (cut to fit a Close frame), ReasonSessionRevoked in logs and metrics.
func (t *tunnel) Revoke(reason string) {
	t.beginClose(revokeCause(reason), time.Time{})
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

// beginClose ends the tunnel on the proxy's initiative, as a batch of one
// ([Server.endAll]): a Close frame with c's code and reason goes to the
// client (unmasked) and then to the upstream (masked), each between two
// frames; the peers' replies are awaited for the close grace, then both
// connections are closed. deadline, when not zero, is the instant the
// close was due. It returns once the client's Close is written or left to
// the rest of the close (a frame in flight to the client).
func (t *tunnel) beginClose(c *closeCause, deadline time.Time) {
	t.owner.endAll([]ending{{ch: t, c: c, due: deadline}})
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
	t.armLocked(max(t.policy().CloseGrace, closeSendLimit))
}

// closeRest is the close after the client's Close frame: the upstream's
// Close, then the close grace for the replies (or the teardown at once).
func (t *tunnel) closeRest(c *closeCause) {
	t.up.interruptSplice()
	t.owner.wheel.note(stepUpstreamClose)
	t.sendClose(&t.upstream, c)

	// The grace for the replies counts from here, however long a busy
	// process took to get the frames out.
	t.mu.Lock()
	grace := t.policy().CloseGrace
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

// armLocked sets the end of the closing handshake to d from now: the
// tunnel's wheel entry is due then (its deadlines no longer count); t.mu
// is held.
func (t *tunnel) armLocked(d time.Duration) {
	t.graceEnd = time.Now().Add(d)
	t.owner.wheel.Schedule(t, t.graceEnd)
}

// sendClose writes the proxy's Close frame to e unless e already had one.
// It waits for a frame being written to e to end.
func (t *tunnel) sendClose(e *endpoint, c *closeCause) {
	var frame []byte
	if e.client {
		frame = c.clientFrame()
	} else {
		var buf [closeFrameMax]byte
		frame = closeFrame(buf[:0], c, true)
	}
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

// closeFrame appends to b a Close frame with c's code and reason (cut to
// fit, closeReasonText). Frames to the upstream are masked with a key from
// crypto/rand: "The masking key needs to be unpredictable" (RFC 6455
// section 5.3).
func closeFrame(b []byte, c *closeCause, masked bool) []byte {
	text := closeReasonText(c.text)
	n := 2 + len(text)
	b = append(b, 0x80|byte(ws.OpClose), byte(n))
	var key [4]byte
	if masked {
		b[1] |= 0x80
		_, _ = rand.Read(key[:])
		b = append(b, key[:]...)
	}
	start := len(b)
	b = append(b, byte(c.code>>8), byte(c.code))
	b = append(b, text...)
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
		t.offWheelLocked()
		if teardown = t.policy().CloseGrace <= 0; !teardown {
			t.armLocked(t.policy().CloseGrace)
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
		t.up.wake()
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
	t.offWheelLocked()
	t.mu.Unlock()
	_ = t.client.conn.Close()
	_ = t.upstream.conn.Close()
	t.up.wake()
	t.down.wake()
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

// endingLocked implements recheckMember.
func (t *tunnel) endingLocked() bool { return t.closing || t.torn }

// offWheelLocked takes the tunnel off the wheel (its deadlines, or the
// end of its close grace); t.mu is held.
func (t *tunnel) offWheelLocked() {
	t.owner.wheel.Remove(t)
}
