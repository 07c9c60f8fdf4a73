package tunnel

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gobwas/httphead"
	"github.com/gobwas/ws"
	"github.com/sirupsen/logrus"

	"github.com/portcullis-proxy/portcullis/pipeline"
	"github.com/portcullis-proxy/portcullis/rules"
	"github.com/portcullis-proxy/portcullis/testsupport/handlertest"
	"github.com/portcullis-proxy/portcullis/testsupport/proctest"
)

// The tests below run real gobwas/ws clients against real gobwas/ws
// servers through a real front server over 127.0.0.1. The front server
// plays the part of the proxy handler: it turns the client's request into
// the upstream request (URL, Host, hop-by-hop headers removed, a mutator's
// header set) and calls ServeTunnel.

// ioWait bounds every blocking read and wait in these tests: it is about
// correctness (nothing hangs), never about speed.
const ioWait = 10 * time.Second

// countingMetrics records what the tunnel reports.
type countingMetrics struct {
	mu         sync.Mutex
	handshakes map[string]int
	opened     int
	closed     map[string]int
	relayed    map[string]int64
	late       map[string][]time.Duration // DeadlineClose by reason
}

func newCountingMetrics() *countingMetrics {
	return &countingMetrics{handshakes: map[string]int{}, closed: map[string]int{}, relayed: map[string]int64{}, late: map[string][]time.Duration{}}
}

func (m *countingMetrics) DeadlineClose(_, reason string, late time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.late[reason] = append(m.late[reason], late)
}

func (m *countingMetrics) deadlineCloses(reason string) []time.Duration {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]time.Duration(nil), m.late[reason]...)
}

func (m *countingMetrics) Handshake(_, result string, _ time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.handshakes[result]++
}

func (m *countingMetrics) Opened(string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.opened++
}

func (m *countingMetrics) Closed(_, reason string, _ time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed[reason]++
}

func (m *countingMetrics) Relayed(_, dir string, n int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.relayed[dir] += n
}

func (m *countingMetrics) closedWith(reason string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.closed[reason]
}

// wantClosed fails t unless want tunnels were counted closed with reason.
func (m *countingMetrics) wantClosed(t testing.TB, reason string, want int) {
	t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	if got := m.closed[reason]; got != want {
		t.Errorf("closed{%s} = %d, want %d (all closes: %v)", reason, got, want, m.closed)
	}
}

func (m *countingMetrics) handshake(result string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.handshakes[result]
}

func (m *countingMetrics) bytes(dir string) int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.relayed[dir]
}

// harness is a Server behind a front server, with the upstream URL and
// the policy and session every upgrade gets.
type harness struct {
	t       *testing.T
	tunnels *Server
	front   *httptest.Server
	metrics *countingMetrics
	logs    *proctest.Buffer

	mu           sync.Mutex
	upstreamURL  string
	policy       pipeline.WebSocketPolicy
	session      func() *pipeline.Session
	preserveHost bool
}

// newHarness starts a front server tunnelling to upstreamURL on relay
// with the default policy (close grace shortened) and a session for
// "alice".
func newHarness(t *testing.T, relay Relay, upstreamURL string) *harness {
	return newHarnessWith(t, relay, upstreamURL, nil, nil)
}

// newHarnessWith is newHarness with the front server started by front
// (httptest.NewServer when nil) and options edited by opts.
func newHarnessWith(t *testing.T, relay Relay, upstreamURL string, front func(http.Handler) *httptest.Server, opts func(*Options)) *harness {
	t.Helper()
	h := &harness{t: t, upstreamURL: upstreamURL, metrics: newCountingMetrics(), logs: &proctest.Buffer{}}
	h.policy = rules.DefaultWebSocketPolicy().WebSocketPolicy
	h.policy.CloseGrace = 2 * time.Second
	h.session = func() *pipeline.Session { return &pipeline.Session{Subject: "alice"} }
	log := logrus.New()
	log.Out = h.logs
	o := Options{Log: log, Metrics: h.metrics, DialTimeout: 2 * time.Second, Relay: relay}
	if opts != nil {
		opts(&o)
	}
	h.tunnels = New(o)
	if front == nil {
		front = httptest.NewServer
	}
	h.front = front(http.HandlerFunc(h.serve))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), ioWait)
		defer cancel()
		_ = h.tunnels.Shutdown(ctx)
		h.front.Close()
	})
	return h
}

// configure changes the policy for the next upgrades.
func (h *harness) configure(f func(p *pipeline.WebSocketPolicy)) {
	h.mu.Lock()
	defer h.mu.Unlock()
	f(&h.policy)
}

// withSession sets the session the next upgrades carry.
func (h *harness) withSession(f func() *pipeline.Session) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.session = f
}

// serve does what the proxy handler does for an allowed upgrade.
func (h *harness) serve(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	target, policy, session, preserve := h.upstreamURL, h.policy, h.session(), h.preserveHost
	h.mu.Unlock()
	req, err := tunnelRequestFor(r, target, policy, session, preserve)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	h.tunnels.ServeTunnel(w, r, req)
}

// tunnelRequestFor builds the Request the proxy handler would for r
// going to the upstream at target: the upstream URL, Host, the client's
// headers without hop-by-hop ones, and the session's (mutator) headers.
func tunnelRequestFor(r *http.Request, target string, policy pipeline.WebSocketPolicy, session *pipeline.Session, preserveHost bool) (Request, error) {
	u, err := url.Parse(target)
	if err != nil {
		return Request{}, err
	}
	u.Path, u.RawQuery = r.URL.Path, r.URL.RawQuery
	out := r.Clone(context.Background())
	out.URL, out.RequestURI = u, ""
	out.Host = ""
	if preserveHost {
		out.Host = r.Host
	}
	for _, name := range []string{"Connection", "Upgrade", "Keep-Alive", "Te", "Trailer", "Transfer-Encoding", "Proxy-Connection"} {
		out.Header.Del(name)
	}
	for k, v := range session.Header {
		out.Header[k] = v
	}
	return Request{RuleID: "rule-1", Policy: policy, Session: session, Upstream: out}, nil
}

// wsURL is the front server's ws:// URL for path.
func (h *harness) wsURL(path string) string {
	return "ws" + strings.TrimPrefix(h.front.URL, "http") + path
}

// waitActive waits until n tunnels are open.
func (h *harness) waitActive(n int) {
	h.t.Helper()
	waitFor(h.t, fmt.Sprintf("%d active tunnels", n), func() bool { return h.tunnels.Active() == n })
}

// waitFor polls cond until it holds, failing after ioWait.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	handlertest.WaitFor(t, what, ioWait, cond)
}

// client is a WebSocket client connection under test.
type client struct {
	t    testing.TB
	conn net.Conn
	rd   io.Reader // conn, behind the bytes the handshake buffered
	hs   ws.Handshake
}

// dialOpts are the client's handshake options.
type dialOpts struct {
	protocols  []string
	extensions []httphead.Option
	header     http.Header
}

// dial opens a WebSocket through the front server.
func (h *harness) dial(path string, o dialOpts) *client {
	h.t.Helper()
	c, err := h.tryDial(path, o)
	if err != nil {
		h.t.Fatalf("dial %s: %v", path, err)
	}
	return c
}

// tryDial is dial returning the error, with the HTTP status of a refusal
// and its body as a *refusal.
func (h *harness) tryDial(path string, o dialOpts) (*client, error) {
	var ref *refusal
	d := ws.Dialer{
		TLSConfig:  h.front.Client().Transport.(*http.Transport).TLSClientConfig,
		Timeout:    ioWait,
		Protocols:  o.protocols,
		Extensions: o.extensions,
		OnStatusError: func(status int, _ []byte, r io.Reader) {
			ref = &refusal{status: status}
			if resp, err := http.ReadResponse(bufio.NewReader(r), nil); err == nil {
				ref.header = resp.Header
				ref.body, _ = io.ReadAll(io.LimitReader(resp.Body, 4096))
				resp.Body.Close()
			}
		},
	}
	if o.header != nil {
		d.Header = ws.HandshakeHeaderHTTP(o.header)
	}
	conn, br, hs, err := d.Dial(context.Background(), h.wsURL(path))
	if err != nil {
		if ref != nil {
			return nil, ref
		}
		return nil, err
	}
	c := &client{t: h.t, conn: conn, rd: conn, hs: hs}
	if br != nil {
		c.rd = br
	}
	h.t.Cleanup(func() { conn.Close() })
	return c, nil
}

// refusal is a non-101 answer to an upgrade.
type refusal struct {
	status int
	header http.Header
	body   []byte
}

func (r *refusal) Error() string { return fmt.Sprintf("refused with %d: %s", r.status, r.body) }

// message decodes the JSON error body of a refusal.
func (r *refusal) message() string {
	var b pipeline.ErrorBody
	if err := json.Unmarshal(r.body, &b); err != nil {
		return "undecodable body " + string(r.body)
	}
	return fmt.Sprintf("%d %s: %s", b.Error.Code, b.Error.Status, b.Error.Message)
}

// frame is one frame as read off the wire, payload unmasked.
type frame struct {
	h       ws.Header
	payload []byte
}

// readFrameFrom reads one frame from r and unmasks its payload.
func readFrameFrom(r io.Reader) (frame, error) {
	h, err := ws.ReadHeader(r)
	if err != nil {
		return frame{}, err
	}
	p := make([]byte, h.Length)
	if _, err := io.ReadFull(r, p); err != nil {
		return frame{}, err
	}
	if h.Masked {
		ws.Cipher(p, h.Mask, 0)
	}
	return frame{h: h, payload: p}, nil
}

// write sends a masked frame as a client must.
func (c *client) write(op ws.OpCode, fin bool, payload []byte) {
	c.t.Helper()
	f := ws.NewFrame(op, fin, append([]byte(nil), payload...))
	f = ws.MaskFrameInPlace(f)
	if err := ws.WriteFrame(c.conn, f); err != nil {
		c.t.Fatalf("client write: %v", err)
	}
}

// echo sends payload as one masked binary frame, written on a goroutine
// of its own so that a frame larger than the socket buffers can come back
// while it is still being sent, and returns the frame that came back.
func (c *client) echo(payload []byte) frame {
	c.t.Helper()
	errc := make(chan error, 1)
	go func() {
		errc <- ws.WriteFrame(c.conn, ws.MaskFrameInPlace(ws.NewBinaryFrame(append([]byte(nil), payload...))))
	}()
	f := c.read()
	if err := <-errc; err != nil {
		c.t.Fatalf("write: %v", err)
	}
	return f
}

// read reads the next frame sent to the client.
func (c *client) read() frame {
	c.t.Helper()
	_ = c.conn.SetReadDeadline(time.Now().Add(ioWait))
	f, err := readFrameFrom(c.rd)
	if err != nil {
		c.t.Fatalf("client read: %v", err)
	}
	if f.h.Masked {
		c.t.Fatalf("frame to the client is masked")
	}
	return f
}

// expectClose reads frames until a Close, answers it and returns its code
// and reason.
func (c *client) expectClose() (ws.StatusCode, string) {
	c.t.Helper()
	for {
		f := c.read()
		if f.h.OpCode == ws.OpClose {
			code, reason := ws.ParseCloseFrameData(f.payload)
			c.write(ws.OpClose, true, f.payload)
			return code, reason
		}
	}
}

// expectCloseWith is expectClose failing the test, without stopping it,
// unless the Close carries code and reason.
func (c *client) expectCloseWith(code ws.StatusCode, reason string) {
	c.t.Helper()
	if got, why := c.expectClose(); got != code || why != reason {
		c.t.Errorf("client got Close %d %q, want %d %q", got, why, code, reason)
	}
}

// expectEnd waits until the proxy closed the client's connection.
func (c *client) expectEnd() {
	c.t.Helper()
	_ = c.conn.SetReadDeadline(time.Now().Add(ioWait))
	_, err := io.Copy(io.Discard, c.conn)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		c.t.Fatalf("the proxy did not close the client's connection")
	}
}

// upstream is a WebSocket server that records what it receives and echoes
// every data frame back frame by frame (same opcode, FIN and RSV bits),
// answers pings with pongs and a Close with the same Close.
type upstream struct {
	t   testing.TB
	srv *httptest.Server
	// select chooses the subprotocol among those offered ("" for none).
	selectProtocol func(offered []string) string
	// negotiator, when set, returns the extension negotiation of one
	// handshake.
	negotiator func() func(httphead.Option) (httphead.Option, error)
	// onConn, when set, replaces the echo loop after the upgrade.
	onConn func(conn net.Conn)

	mu       sync.Mutex
	requests []*http.Request // handshakes received
	offered  [][]string      // subprotocols offered per handshake
	frames   []frame         // frames received, in order (all connections)
	ended    int             // connections whose loop ended
	conns    atomic.Int64
}

func newUpstream(t testing.TB) *upstream {
	u := &upstream{t: t}
	u.srv = httptest.NewServer(http.HandlerFunc(u.serve))
	t.Cleanup(u.srv.Close)
	return u
}

func (u *upstream) serve(w http.ResponseWriter, r *http.Request) {
	offered := OfferedProtocols(r.Header, pipeline.Scrub{})
	u.mu.Lock()
	u.requests = append(u.requests, r)
	u.offered = append(u.offered, offered)
	sel, neg, onConn := u.selectProtocol, u.negotiator, u.onConn
	u.mu.Unlock()
	up := ws.HTTPUpgrader{}
	if neg != nil {
		up.Negotiate = neg()
	}
	if sel != nil {
		if p := sel(offered); p != "" {
			up.Protocol = func(s string) bool { return s == p }
		}
	}
	conn, _, _, err := up.Upgrade(r, w)
	if err != nil {
		return
	}
	u.conns.Add(1)
	defer func() {
		conn.Close()
		u.mu.Lock()
		u.ended++
		u.mu.Unlock()
	}()
	if onConn != nil {
		onConn(conn)
		return
	}
	u.echo(conn)
}

// echo is the default upstream behaviour.
func (u *upstream) echo(conn net.Conn) {
	for {
		_ = conn.SetReadDeadline(time.Now().Add(ioWait))
		f, err := readFrameFrom(conn)
		if err != nil {
			return
		}
		u.mu.Lock()
		u.frames = append(u.frames, f)
		u.mu.Unlock()
		var out ws.Frame
		switch f.h.OpCode {
		case ws.OpPing:
			out = ws.NewPongFrame(f.payload)
		case ws.OpPong:
			continue
		case ws.OpClose:
			_ = ws.WriteFrame(conn, ws.NewCloseFrame(f.payload))
			return
		default:
			out = ws.NewFrame(f.h.OpCode, f.h.Fin, f.payload)
			out.Header.Rsv = f.h.Rsv
		}
		if err := ws.WriteFrame(conn, out); err != nil {
			return
		}
	}
}

// wsURL is the upstream's URL as the rule's upstream (http scheme).
func (u *upstream) url() string { return u.srv.URL }

func (u *upstream) received() []frame {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]frame(nil), u.frames...)
}

func (u *upstream) lastRequest() *http.Request {
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.requests) == 0 {
		return nil
	}
	return u.requests[len(u.requests)-1]
}

func (u *upstream) endedConns() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.ended
}

// closeFromUpstream waits in onConn-style handlers for the proxy's Close,
// answers it and reports it.
type closeSeen struct {
	code   ws.StatusCode
	reason string
}

// expectCloseOn reads frames on an upstream connection until a Close
// (masked, as from a client), answers it and returns it.
func expectCloseOn(conn net.Conn) (closeSeen, error) {
	for {
		_ = conn.SetReadDeadline(time.Now().Add(ioWait))
		f, err := readFrameFrom(conn)
		if err != nil {
			return closeSeen{}, err
		}
		if f.h.OpCode != ws.OpClose {
			continue
		}
		if !f.h.Masked {
			return closeSeen{}, errors.New("close frame to the upstream is not masked")
		}
		code, reason := ws.ParseCloseFrameData(f.payload)
		_ = ws.WriteFrame(conn, ws.NewCloseFrame(f.payload))
		return closeSeen{code: code, reason: reason}, nil
	}
}

func TestTunnelEcho(t *testing.T) { EachRelay(t, testTunnelEcho) }

func testTunnelEcho(t *testing.T, relay Relay) {
	up := newUpstream(t)
	h := newHarness(t, relay, up.url())
	c := h.dial("/echo", dialOpts{})
	h.waitActive(1)

	tests := []struct {
		name    string
		op      ws.OpCode
		payload []byte
	}{
		{name: "text", op: ws.OpText, payload: []byte("hello, tunnel")},
		{name: "empty text", op: ws.OpText, payload: nil},
		{name: "binary", op: ws.OpBinary, payload: bytes.Repeat([]byte{0, 1, 2, 0xff}, 100)},
		{name: "binary 126..65535", op: ws.OpBinary, payload: bytes.Repeat([]byte{7}, 1000)},
		{name: "binary over the inline area", op: ws.OpBinary, payload: bytes.Repeat([]byte("x"), 70000)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c.t = t
			c.write(tc.op, true, tc.payload)
			f := c.read()
			if f.h.OpCode != tc.op || !f.h.Fin || !bytes.Equal(f.payload, tc.payload) {
				t.Errorf("echo = op %v fin %v %d bytes, want op %v fin true %d bytes", f.h.OpCode, f.h.Fin, len(f.payload), tc.op, len(tc.payload))
			}
		})
	}
	c.t = t
	// The upstream got the client's frames masked (with the client's own
	// keys: the proxy does not re-mask).
	for i, f := range up.received() {
		if !f.h.Masked {
			t.Errorf("frame %d reached the upstream unmasked", i)
		}
	}
	c.write(ws.OpClose, true, ws.NewCloseFrameBody(ws.StatusNormalClosure, "bye"))
	if code, _ := ws.ParseCloseFrameData(c.read().payload); code != ws.StatusNormalClosure {
		t.Errorf("close reply code = %d, want 1000", code)
	}
	c.expectEnd()
	h.waitActive(0)
	h.metrics.wantClosed(t, ReasonClientClosed, 1)
	if h.metrics.bytes(DirToUpstream) == 0 || h.metrics.bytes(DirToClient) == 0 {
		t.Errorf("relayed bytes not counted: %v", h.metrics.relayed)
	}
	logs := h.logs.String()
	for _, want := range []string{"websocket tunnel closed", "rule=rule-1", "subject=alice", "reason=client_closed", "bytes_to_upstream=", "peer_close_code=1000"} {
		if !strings.Contains(logs, want) {
			t.Errorf("tunnel log lacks %q:\n%s", want, logs)
		}
	}
}
