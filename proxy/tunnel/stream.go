package tunnel

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/portcullis-proxy/portcullis/pipeline"
)

// Session-bound streams. A streaming response — one the upstream sends
// without a Content-Length, or as text/event-stream — of an allowed request
// lives under its rule's policy (the websocket block) as a tunnel does: it
// is registered in the [Registry] (admin API, revocations, fleet channel),
// shares the coalesced re-checks of its session with the session's
// tunnels, and ends at max lifetime, session expiry, revocation, a failed
// re-check or idle timeout (no byte from the upstream for idle_timeout).
//
// How it ends: a text/event-stream gets one final event
// ("event: <stream_close_event>" and a JSON data line naming the reason)
// and then a clean end of the response, so that an EventSource sees it;
// when the stream is cut in the middle of an event, or stream_close_event
// is "", no event is sent (a clean end only at an event boundary, else an
// abort). Any other stream is aborted — the connection (HTTP/1) or the
// stream (HTTP/2) is reset without the terminating chunk — so that a
// client cannot mistake it for a complete body.

// StreamRequest is a streaming response handed to [Server.GovernStream].
type StreamRequest struct {
	// RuleID names the rule that matched.
	RuleID string
	// Policy is the rule's resolved policy (the websocket block).
	Policy pipeline.WebSocketPolicy
	// Rule, when set, is the compiled rule RuleID and Policy come from:
	// the stream is then re-authorized through it (Policy.Reauthorize) and
	// follows rules reloads ([Server.FollowRules]). Unset means nil: a nil
	// *rules.Compiled in it is a set rule, and must not be passed.
	Rule pipeline.ChannelRule
	// Session is what the pipeline learnt (Subject, SessionID, ExpiresAt,
	// Revalidator); the stream keeps only those fields.
	Session *pipeline.Session
	// Response is the upstream's answer; its Body is what the stream
	// wraps.
	Response *http.Response
	// Cancel aborts the upstream exchange (the request's context): it is
	// how a decision to end unblocks a read waiting on the upstream.
	Cancel context.CancelFunc
	// Client is the client's writer: its read and write deadlines
	// (serve.proxy.timeout.read, .write) are lifted, the stream having its
	// own bounds, and a write deadline of close_grace is set when the
	// stream must end, so that a client that stopped reading cannot hold
	// it.
	Client http.ResponseWriter
	// RemoteAddr is the client's address, as the admin API shows it.
	RemoteAddr string
}

// IsStream reports whether res is a stream under the policy: a body the
// upstream sends without a Content-Length, or an event stream. Answers
// without a body (HEAD, 1xx, 204, 304) are not streams.
func IsStream(res *http.Response) bool {
	if res.Body == nil || res.Body == http.NoBody || res.StatusCode < 200 || res.StatusCode == http.StatusNoContent ||
		res.StatusCode == http.StatusNotModified || (res.Request != nil && res.Request.Method == http.MethodHead) {
		return false
	}
	return res.ContentLength < 0 || isEventStream(res.Header)
}

func isEventStream(h http.Header) bool {
	ct, _, _ := strings.Cut(h.Get("Content-Type"), ";")
	return strings.EqualFold(strings.TrimSpace(ct), "text/event-stream")
}

// ErrStreamEnded is the read error with which the proxy aborts a stream it
// ended (any stream but an event stream ended at an event boundary).
type ErrStreamEnded struct{ Reason string }

func (e *ErrStreamEnded) Error() string { return "stream ended by the proxy: " + e.Reason }

// GovernStream registers the stream req describes and returns the body to
// copy to the client in place of req.Response.Body. Reading it relays the
// upstream's bytes until the upstream ends (io.EOF) or the policy ends the
// stream (a final event and io.EOF, or an [*ErrStreamEnded]); closing it
// unregisters the stream. A server shutting down ends new streams at
// once.
func (t *Server) GovernStream(req StreamRequest) io.ReadCloser {
	now := time.Now()
	s := &stream{body: req.Response.Body, cancel: req.Cancel, sse: isEventStream(req.Response.Header)}
	s.bind(t, req.RuleID, req.Policy, req.Rule, req.Session, req.RemoteAddr, now)
	s.boundary.at = true
	if req.Client != nil {
		s.rc = http.NewResponseController(req.Client)
		// The stream's own bounds replace the server's timeouts; an error
		// means the writer cannot have deadlines, hence has none.
		_ = s.rc.SetWriteDeadline(time.Time{})
		_ = s.rc.SetReadDeadline(time.Time{})
	}
	s.id = t.reg.Add(s, s.keys)
	t.mu.Lock()
	t.streams[s] = struct{}{}
	shutting := t.shutting
	t.mu.Unlock()
	t.govern(s)
	if shutting {
		s.end(&causeShutdown)
	}
	t.catchUp(s)
	return s
}

// stream is one governed streaming response.
type stream struct {
	binding // lastActive: the last byte from the upstream
	sse     bool
	body    io.ReadCloser
	cancel  context.CancelFunc
	rc      *http.ResponseController

	relayed   atomic.Int64
	closeOnce sync.Once

	// Only the reading goroutine touches these.
	boundary sseBoundary
	final    []byte // the final event still to deliver; nil: none or done

	// Guarded by binding.mu.
	cause     *closeCause // why the proxy ends it; nil while it runs
	ended     string      // the reason it ended, once closed
	finishing bool        // finish ran: the final event or the abort is decided
}

// decided returns the proxy's reason to end the stream, nil if none.
func (s *stream) decided() *closeCause {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cause
}

// Read implements io.Reader for the copy to the client.
func (s *stream) Read(p []byte) (int, error) {
	if c := s.decided(); c != nil {
		return s.finish(p, c)
	}
	n, err := s.body.Read(p)
	if c := s.decided(); c != nil {
		// Bytes read once the end was decided are not delivered.
		return s.finish(p, c)
	}
	if n > 0 {
		s.lastActive.Store(time.Now().UnixNano())
		s.relayed.Add(int64(n))
		if s.sse {
			s.boundary.feed(p[:n])
		}
	}
	return n, err
}

// finish delivers the end the proxy decided: the final event then io.EOF
// for an event stream at an event boundary, else an abort.
func (s *stream) finish(p []byte, c *closeCause) (int, error) {
	s.mu.Lock()
	first := !s.finishing
	s.finishing = true
	s.mu.Unlock()
	if first {
		switch {
		case !s.sse || !s.boundary.atBoundary():
			return 0, &ErrStreamEnded{Reason: c.reason}
		case s.policy().StreamCloseEvent != "":
			s.final = closeEvent(s.policy().StreamCloseEvent, c)
		}
	}
	if s.final == nil {
		if !s.sse || !s.boundary.atBoundary() {
			return 0, &ErrStreamEnded{Reason: c.reason}
		}
		return 0, io.EOF
	}
	n := copy(p, s.final)
	if s.final = s.final[n:]; len(s.final) == 0 {
		s.final = nil
	}
	return n, nil
}

// closeEvent renders the final event of an event stream ended for c.
func closeEvent(event string, c *closeCause) []byte {
	data, _ := json.Marshal(struct {
		Reason  string `json:"reason"`
		Message string `json:"message"`
	}{c.reason, c.text})
	return []byte("event: " + event + "\ndata: " + string(data) + "\n\n")
}

// Close implements io.Closer: the stream is unregistered, whichever way
// it ended.
func (s *stream) Close() error {
	err := s.body.Close()
	s.closeOnce.Do(func() {
		s.mu.Lock()
		reason := ReasonUpstreamClosed
		if s.cause != nil {
			reason = s.cause.reason
		}
		s.ended = reason
		s.owner.wheel.Remove(s)
		s.mu.Unlock()
		s.cancel()
		t := s.owner
		t.reg.Remove(s.id)
		t.checks.leave(s)
		t.mu.Lock()
		delete(t.streams, s)
		t.signalDrainedLocked()
		t.mu.Unlock()
		t.m.Relayed(s.rule, DirToClient, s.relayed.Load())
		t.m.Closed(s.rule, reason, time.Since(s.start))
		t.log.WithFields(logrus.Fields{"rule": s.rule, "subject": s.subject, "reason": reason,
			"kind": s.kind(), "bytes_to_client": s.relayed.Load()}).Info("stream ended")
	})
	return err
}

func (s *stream) kind() string {
	if s.sse {
		return "sse"
	}
	return "stream"
}

// end decides that the stream ends for c (the first cause wins) and
// unblocks the copy: the upstream exchange is cancelled, and the client
// has close_grace to take the rest.
func (s *stream) end(c *closeCause) {
	s.mu.Lock()
	if s.cause != nil || s.ended != "" {
		s.mu.Unlock()
		return
	}
	s.cause = c
	s.owner.wheel.Remove(s)
	s.mu.Unlock()
	if s.rc != nil {
		_ = s.rc.SetWriteDeadline(time.Now().Add(max(s.policy().CloseGrace, 100*time.Millisecond)))
	}
	s.cancel()
}

// Revoke implements [LiveChannel].
func (s *stream) Revoke(reason string) { s.end(revokeCause(reason)) }

// Describe implements [LiveChannel].
func (s *stream) Describe() ChannelInfo {
	return s.describe(ChannelInfo{Kind: s.kind(), BytesToClient: s.relayed.Load()})
}

// bound implements recheckMember.
func (s *stream) bound() *binding { return &s.binding }

// endingLocked implements recheckMember.
func (s *stream) endingLocked() bool { return s.cause != nil || s.ended != "" }

// sseBoundary follows the event stream's lines (terminated by CRLF, LF or
// CR, as the HTML standard's parser reads them) to know whether what was
// delivered so far ends at an event boundary: a blank line, or nothing
// yet. Only there can a final event be appended without completing a
// half-sent event into a different one.
type sseBoundary struct {
	at      bool // the last complete line was blank (or nothing was sent)
	lineLen int  // bytes of the current, unterminated line
	prevCR  bool // the last byte was CR (a following LF belongs to it)
}

func (b *sseBoundary) feed(p []byte) {
	for _, c := range p {
		switch {
		case c == '\n' && b.prevCR:
			b.prevCR = false
		case c == '\r' || c == '\n':
			b.at = b.lineLen == 0
			b.lineLen = 0
			b.prevCR = c == '\r'
		default:
			b.lineLen++
			b.prevCR = false
			b.at = false
		}
	}
}

func (b *sseBoundary) atBoundary() bool { return b.at && b.lineLen == 0 }
