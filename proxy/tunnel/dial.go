package tunnel

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/textproto"
	"slices"
	"strings"
	"time"

	"github.com/gobwas/httphead"
	"github.com/gobwas/ws"

	"github.com/portcullis-proxy/portcullis/pipeline"
)

// dialed is the upstream side of a tunnel after its 101.
type dialed struct {
	conn net.Conn
	// pending holds bytes the upstream sent right after its 101 that the
	// handshake reader had already buffered: the first frames to relay.
	pending []byte
	hs      ws.Handshake
	// header is what the upstream's 101 carried beyond the WebSocket
	// handshake headers (e.g. Set-Cookie), relayed to the client.
	header http.Header
}

// upgraded is the client side of a tunnel after its 101.
type upgraded struct {
	conn    net.Conn
	pending []byte // frames the client sent before reading the 101
	hs      ws.Handshake
}

// upstreamHandshakeError is an upstream that accepted the connection but
// did not complete a valid WebSocket handshake.
type upstreamHandshakeError struct{ err error }

func (e upstreamHandshakeError) Error() string { return "upstream handshake: " + e.err.Error() }
func (e upstreamHandshakeError) Unwrap() error { return e.err }

// upstreamStatusError is an upstream's non-101 answer to the upgrade.
type upstreamStatusError struct{ status int }

func (e upstreamStatusError) Error() string {
	return fmt.Sprintf("upstream answered the upgrade with status %d", e.status)
}

// checkClientHandshake validates the client's opening handshake (RFC 6455
// section 4.2.1) before anything is dialled, so that a malformed request
// costs no upstream connection. It returns 0 when the request is valid.
func checkClientHandshake(r *http.Request) (status int, msg string) {
	switch {
	case r.Method != http.MethodGet:
		return http.StatusMethodNotAllowed, "WebSocket upgrades use GET"
	case r.ProtoMajor != 1 || r.ProtoMinor < 1:
		return http.StatusBadRequest, "WebSocket upgrades need HTTP/1.1"
	case !tunnelHeaderHasToken(r.Header, "Upgrade", "websocket"):
		return http.StatusBadRequest, "missing Upgrade: websocket"
	case !tunnelHeaderHasToken(r.Header, "Connection", "upgrade"):
		return http.StatusBadRequest, "missing Connection: Upgrade"
	}
	// "If this version does not match a version understood by the server,
	// the server MUST abort the WebSocket handshake [...] and instead send
	// an appropriate HTTP error code (such as 426 Upgrade Required) and a
	// |Sec-WebSocket-Version| header field" (RFC 6455 section 4.2.2).
	switch v := r.Header.Get("Sec-WebSocket-Version"); v {
	case "13":
	case "":
		return http.StatusBadRequest, "missing Sec-WebSocket-Version"
	default:
		return http.StatusUpgradeRequired, "unsupported Sec-WebSocket-Version"
	}
	// "a nonce consisting of a randomly selected 16-byte value that has been
	// base64-encoded" (RFC 6455 section 4.1).
	key, err := base64.StdEncoding.DecodeString(r.Header.Get("Sec-WebSocket-Key"))
	if err != nil || len(key) != 16 {
		return http.StatusBadRequest, "bad Sec-WebSocket-Key"
	}
	return 0, ""
}

// tunnelHeaderHasToken reports whether a comma-separated header contains
// token, case-insensitively.
func tunnelHeaderHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for t := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// handshakeOnly are request headers the Dialer writes itself, hop-by-hop
// headers, and framing headers that have no place on an upgrade request.
var handshakeOnly = []string{
	"Host", "Upgrade", "Connection", "Proxy-Connection", "Keep-Alive", "Te",
	"Trailer", "Transfer-Encoding", "Content-Length",
	"Sec-Websocket-Key", "Sec-Websocket-Version", "Sec-Websocket-Protocol",
	"Sec-Websocket-Extensions", "Sec-Websocket-Accept",
}

// upstreamDialer prepares the gobwas/ws Dialer for req: the client's
// subprotocols minus token carriers, its extensions as offered, the
// request's headers (cookies only when the policy forwards them) and Host.
func (t *Server) upstreamDialer(req Request, d *dialed, status *int, connected *bool) (ws.Dialer, string, error) {
	up := req.Upstream
	if up == nil || up.URL == nil {
		return ws.Dialer{}, "", errors.New("no upstream request")
	}
	u := *up.URL
	switch u.Scheme {
	case "http", "ws":
		u.Scheme = "ws"
	case "https", "wss":
		u.Scheme = "wss"
	default:
		return ws.Dialer{}, "", fmt.Errorf("upstream scheme %q cannot carry a WebSocket", u.Scheme)
	}
	u.User, u.Fragment, u.RawFragment = nil, "", ""

	var scrub pipeline.Scrub
	if req.Session != nil {
		scrub = req.Session.Scrub
	}
	protocols := OfferedProtocols(up.Header, scrub)
	extensions, err := offeredExtensions(up.Header)
	if err != nil {
		return ws.Dialer{}, "", err
	}

	h := up.Header.Clone()
	if h == nil {
		h = http.Header{}
	}
	for _, name := range handshakeOnly {
		delete(h, name)
	}
	if !req.Policy.ForwardCookies {
		// The client's cookies stay behind; cookies a mutator set for the
		// upstream are deliberate and go.
		delete(h, "Cookie")
		if req.Session != nil && len(req.Session.Cookies) > 0 {
			h.Set("Cookie", mergeSessionCookies(req.Session.Cookies))
		}
	}

	nd := &net.Dialer{Timeout: t.opts.DialTimeout}
	dl := ws.Dialer{
		NetDial: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := nd.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			*connected = true
			// The TLS and WebSocket handshakes get HandshakeTimeout of
			// their own; dialUpstream clears the deadline.
			_ = c.SetDeadline(time.Now().Add(t.opts.HandshakeTimeout))
			return c, nil
		},
		Timeout:    t.opts.DialTimeout + t.opts.HandshakeTimeout,
		Protocols:  protocols,
		Extensions: extensions,
		Header:     ws.HandshakeHeaderHTTP(h),
		TLSConfig:  t.opts.TLSConfig,
		OnStatusError: func(code int, _ []byte, _ io.Reader) {
			*status = code
		},
		OnHeader: func(key, value []byte) error {
			k := string(key)
			if !upgradeResponseHopByHop(k) {
				if d.header == nil {
					d.header = http.Header{}
				}
				d.header.Add(k, string(value))
			}
			return nil
		},
	}
	if up.Host != "" && up.Host != u.Host {
		dl.Host = up.Host
	}
	return dl, u.String(), nil
}

// upgradeResponseHopByHop reports whether a header of the upstream's 101 is
// the upstream's own business rather than the client's.
func upgradeResponseHopByHop(canonical string) bool {
	switch canonical {
	case "Connection", "Keep-Alive", "Proxy-Connection", "Te", "Trailer",
		"Transfer-Encoding", "Content-Length", "Upgrade", "Sec-Websocket-Accept",
		"Sec-Websocket-Protocol", "Sec-Websocket-Extensions":
		return true
	}
	return false
}

// dialUpstream connects to the upstream and completes its WebSocket
// handshake. ctx is the client's request context: a client that goes away
// aborts the dial.
func (t *Server) dialUpstream(ctx context.Context, req Request) (*dialed, error) {
	d := &dialed{}
	status, connected := 0, false
	dl, target, err := t.upstreamDialer(req, d, &status, &connected)
	if err != nil {
		return nil, err
	}
	conn, br, hs, err := dl.Dial(ctx, target)
	if err != nil {
		if conn != nil {
			conn.Close()
		}
		var se ws.StatusError
		if errors.As(err, &se) || status != 0 {
			if status == 0 {
				status = int(se)
			}
			return nil, upstreamStatusError{status: status}
		}
		var ne net.Error
		if connected && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) && !(errors.As(err, &ne) && ne.Timeout()) {
			return nil, upstreamHandshakeError{err: err}
		}
		return nil, err
	}
	if err := conn.SetDeadline(time.Time{}); err != nil {
		conn.Close()
		return nil, err
	}
	if br != nil {
		if n := br.Buffered(); n > 0 {
			p, _ := br.Peek(n)
			d.pending = append([]byte(nil), p...)
		}
		ws.PutReader(br)
	}
	d.conn, d.hs = conn, hs
	return d, nil
}

// classifyDialError maps a failed upstream dial to the handshake result,
// the HTTP status and the message the client gets. The cause is logged,
// never shown.
func classifyDialError(err error) (result string, status int, msg string) {
	var se upstreamStatusError
	var he upstreamHandshakeError
	var ne net.Error
	switch {
	case errors.As(err, &he):
		return "upstream_bad_handshake", http.StatusBadGateway, "upstream answered the upgrade incorrectly"
	case errors.As(err, &se):
		if se.status >= 400 && se.status < 600 {
			return "upstream_refused", se.status, "upstream refused the WebSocket upgrade"
		}
		return "upstream_refused", http.StatusBadGateway, "upstream refused the WebSocket upgrade"
	case errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()):
		return "upstream_timeout", http.StatusGatewayTimeout, "upstream timed out"
	default:
		return "upstream_unreachable", http.StatusBadGateway, "upstream unreachable"
	}
}

// upgradeClient answers the client's upgrade with 101, the upstream's
// chosen subprotocol and extensions and the upstream's other 101 headers.
func (t *Server) upgradeClient(w http.ResponseWriter, r *http.Request, up *dialed) (*upgraded, error) {
	u := ws.HTTPUpgrader{
		Timeout: t.opts.HandshakeTimeout,
		Header:  up.header,
	}
	if p := up.hs.Protocol; p != "" {
		u.Protocol = func(offered string) bool { return offered == p }
	}
	if len(up.hs.Extensions) > 0 {
		u.Negotiate = acceptAsUpstream(up.hs.Extensions)
	}
	conn, rw, hs, err := u.Upgrade(r, w)
	if err != nil {
		if conn != nil {
			conn.Close()
		}
		return nil, err
	}
	if hs.Protocol != up.hs.Protocol {
		conn.Close()
		return nil, fmt.Errorf("client did not offer the upstream's subprotocol")
	}
	cl := &upgraded{conn: conn, hs: hs}
	if rw != nil && rw.Reader.Buffered() > 0 {
		p, _ := rw.Reader.Peek(rw.Reader.Buffered())
		cl.pending = append([]byte(nil), p...)
	}
	return cl, nil
}

// acceptAsUpstream answers each extension the client offered with what the
// upstream accepted under the same name (its parameters verbatim), once per
// name: both peers then run the same extension end to end over frames the
// tunnel does not touch.
func acceptAsUpstream(accepted []httphead.Option) func(httphead.Option) (httphead.Option, error) {
	done := make([]bool, len(accepted))
	return func(offer httphead.Option) (httphead.Option, error) {
		for i, a := range accepted {
			if !done[i] && bytes.Equal(a.Name, offer.Name) {
				done[i] = true
				return a, nil
			}
		}
		return httphead.Option{}, nil
	}
}

// OfferedProtocols returns the subprotocols offered in h's
// Sec-WebSocket-Protocol headers, in order, without the entries scrub
// names (credential carriers): what the upstream may be offered.
func OfferedProtocols(h http.Header, scrub pipeline.Scrub) []string {
	var out []string
	for _, v := range h.Values("Sec-WebSocket-Protocol") {
		for p := range strings.SplitSeq(v, ",") {
			p = strings.TrimSpace(p)
			if p == "" || scrub.DropsSubprotocol(p) {
				continue
			}
			out = append(out, p)
		}
	}
	return out
}

// offeredExtensions parses the client's Sec-WebSocket-Extensions offers.
func offeredExtensions(h http.Header) ([]httphead.Option, error) {
	var out []httphead.Option
	for _, v := range h.Values("Sec-WebSocket-Extensions") {
		var ok bool
		if out, ok = httphead.ParseOptions([]byte(v), out); !ok {
			return nil, errors.New("malformed Sec-WebSocket-Extensions")
		}
	}
	return out, nil
}

// mergeSessionCookies renders cookies set by mutators as a Cookie header,
// in name order.
func mergeSessionCookies(set map[string]string) string {
	names := make([]string, 0, len(set))
	for name := range set {
		names = append(names, name)
	}
	slices.Sort(names)
	var b strings.Builder
	for _, name := range names {
		if b.Len() > 0 {
			b.WriteString("; ")
		}
		b.WriteString(textproto.TrimString(name))
		b.WriteByte('=')
		b.WriteString(set[name])
	}
	return b.String()
}
