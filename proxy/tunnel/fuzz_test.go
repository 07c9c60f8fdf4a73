package tunnel_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
	"github.com/sirupsen/logrus"

	"github.com/portcullis-proxy/portcullis/internal/httpguard"
	"github.com/portcullis-proxy/portcullis/proxy/tunnel"
	"github.com/portcullis-proxy/portcullis/testsupport/handlertest"
	"github.com/portcullis-proxy/portcullis/testsupport/proctest"
)

// The fuzz targets below drive the WebSocket path of the assembled proxy
// (httpguard listener, net/http, proxy.Handler with a compiled rule,
// tunnel.Server) over loopback with arbitrary input, against a real upstream that
// completes the handshake with gobwas/ws. They check properties, not
// outputs: no panic, every tunnel ends and leaves no goroutine behind, and
// what reaches a peer is a prefix of what the other peer sent, cut at a
// frame boundary or inside the last frame, made only of valid frames,
// ending at the first Close.

// fuzzIOWait bounds every wait of one fuzz input: an input that keeps a
// tunnel open longer is a hang.
const fuzzIOWait = 10 * time.Second

// tunnelFixture is a proxy in front of an upstream, built once per fuzzing
// process.
type tunnelFixture struct {
	front    string // host:port of the proxy
	tunnels  *tunnel.Server
	upConns  chan net.Conn // upstream side of each new tunnel (relay mode)
	echo     bool          // the upstream echoes frames instead (handshake mode)
	panics   *panicLog
	baseline int
}

// panicLog records what net/http's error log receives: a handler panic is
// recovered and logged there, never seen by the test otherwise.
type panicLog struct{ proctest.Buffer }

func (p *panicLog) panicked() string {
	if s := p.String(); strings.Contains(s, "panic") {
		return s
	}
	return ""
}

var (
	fixturesMu sync.Mutex
	fixtures   = map[fixtureKey]*tunnelFixture{}
)

// fixtureKey names a fixture: its relay and its mode.
type fixtureKey struct {
	relay tunnel.Relay
	echo  bool
}

// fixture returns the process's fixture for the relay and the mode (echo:
// the upstream echoes every frame; otherwise its connections are handed to
// the test).
func fixture(t testing.TB, relay tunnel.Relay, echo bool) *tunnelFixture {
	fixturesMu.Lock()
	defer fixturesMu.Unlock()
	key := fixtureKey{relay, echo}
	if fx := fixtures[key]; fx != nil {
		return fx
	}
	fx := &tunnelFixture{upConns: make(chan net.Conn, 1), echo: echo, panics: &panicLog{}}

	upLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := upLn.Accept()
			if err != nil {
				return
			}
			go fx.upstream(c)
		}
	}()

	set := ruleSet(t, handlertest.Rule{ID: "ws", URL: "http://<[^/]+>/<.*>", Mutators: []string{"header"}, Upstream: "http://" + upLn.Addr().String(),
		More: []string{`websocket: {close_grace: 50ms, allowed_origins: ["https://app.example"]}`}}.YAML())
	log := logrus.New()
	log.Out = io.Discard
	fx.tunnels = tunnel.New(tunnel.Options{Log: log, DialTimeout: 2 * time.Second, HandshakeTimeout: 2 * time.Second, Relay: relay})
	h := proxyHandler(set, fx.tunnels, nil)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 2 * time.Second, ErrorLog: stdLogger(fx.panics)}
	go srv.Serve(httpguard.Protect(srv, ln))
	fx.front = ln.Addr().String()
	fixtures[key] = fx
	return fx
}

// upstream completes the handshake on c, then either echoes frames or
// hands c to the test.
func (fx *tunnelFixture) upstream(c net.Conn) {
	c.SetDeadline(time.Now().Add(fuzzIOWait))
	u := ws.Upgrader{Protocol: func(p []byte) bool { return string(p) == "chat" }}
	if _, err := u.Upgrade(c); err != nil {
		c.Close()
		return
	}
	c.SetDeadline(time.Time{})
	if !fx.echo {
		fx.upConns <- c
		return
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(fuzzIOWait))
	for {
		msg, op, err := wsutil.ReadClientData(c)
		if err != nil {
			return
		}
		if err := wsutil.WriteServerMessage(c, op, msg); err != nil {
			return
		}
	}
}

// settle waits until no tunnel is open and the goroutines are back to
// baseline, counted before the input was tried.
func (fx *tunnelFixture) settle(t testing.TB, baseline int) {
	t.Helper()
	deadline := time.Now().Add(fuzzIOWait)
	for fx.tunnels.Active() != 0 || runtime.NumGoroutine() > baseline {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			n := runtime.Stack(buf, true)
			t.Fatalf("%d tunnels and %d goroutines left (baseline %d):\n%s", fx.tunnels.Active(), runtime.NumGoroutine(), baseline, buf[:n])
		}
		time.Sleep(5 * time.Millisecond)
	}
	if p := fx.panics.panicked(); p != "" {
		t.Fatalf("the server panicked:\n%s", p)
	}
}

// frame is one frame found in a byte stream.
type frame struct {
	off, n int // offset and length (header included) in the stream
	op     ws.OpCode
}

// walkFrames splits b, sent by a client (masked frames) or a server, into
// frames, checking each header as RFC 6455 section 5 requires (masking,
// reserved bits and opcodes, control frames short and final, continuation
// only inside a fragmented message). It stops at the first invalid header
// (err) or at a frame b holds only the start of (partial > 0).
func walkFrames(b []byte, fromClient bool) (frames []frame, partial int, err error) {
	state := ws.StateClientSide
	if fromClient {
		state = ws.StateServerSide
	}
	off := 0
	for off < len(b) {
		r := bytes.NewReader(b[off:])
		h, herr := ws.ReadHeader(r)
		if herr != nil {
			if errors.Is(herr, io.EOF) || errors.Is(herr, io.ErrUnexpectedEOF) {
				return frames, len(b) - off, nil
			}
			return frames, 0, fmt.Errorf("at %d: %w", off, herr)
		}
		if cerr := ws.CheckHeader(h, state); cerr != nil {
			return frames, 0, fmt.Errorf("at %d: %w", off, cerr)
		}
		hl := len(b) - off - r.Len()
		if int64(len(b)-off-hl) < h.Length {
			return frames, len(b) - off, nil
		}
		frames = append(frames, frame{off: off, n: hl + int(h.Length), op: h.OpCode})
		off += hl + int(h.Length)
		if !h.OpCode.IsControl() {
			if h.Fin {
				state = state.Clear(ws.StateFragmented)
			} else {
				state = state.Set(ws.StateFragmented)
			}
		}
	}
	return frames, 0, nil
}

// checkRelayed checks what a peer received (got) against what the other
// peer sent (sent): got is valid frames (the last possibly cut short), a
// prefix of sent with nothing after a Close, optionally followed by one
// Close frame of the proxy's own; and when sent is nothing but complete
// valid frames and no Close, got is all of it.
func checkRelayed(t testing.TB, sent, got []byte, fromClient bool) {
	t.Helper()
	// The proxy's own frames are masked towards the upstream and not
	// towards the client, like the frames it relays: one walk checks both.
	frames, partial, err := walkFrames(got, fromClient)
	if err != nil {
		t.Fatalf("the peer received bytes that are not valid frames: %v\nsent %q\ngot  %q", err, sent, got)
	}
	relayed, own := got, false
	if !bytes.HasPrefix(sent, got) {
		n := len(frames)
		if n == 0 || partial > 0 || frames[n-1].op != ws.OpClose || !bytes.HasPrefix(sent, got[:frames[n-1].off]) {
			t.Fatalf("the peer received bytes the other peer did not send there:\nsent %q\ngot  %q", sent, got)
		}
		relayed, frames, own = got[:frames[n-1].off], frames[:n-1], true
	}
	for i, f := range frames {
		if f.op == ws.OpClose && (own || i != len(frames)-1 || len(relayed) > f.off+f.n) {
			t.Fatalf("frames were sent after a Close:\nsent %q\ngot  %q", sent, got)
		}
	}
	all, rest, serr := walkFrames(sent, fromClient)
	clean := serr == nil && rest == 0
	for _, f := range all {
		clean = clean && f.op != ws.OpClose
	}
	if clean && !bytes.Equal(relayed, sent) {
		t.Fatalf("valid frames were lost:\nsent %q\ngot  %q", sent, got)
	}
}

// stdLogger adapts w to net/http's error log.
func stdLogger(w io.Writer) *log.Logger { return log.New(w, "", 0) }

// dialTunnel opens a tunnel through the fixture and returns the client's
// connection (with any bytes read past the 101) and the upstream's.
func dialTunnel(t testing.TB, fx *tunnelFixture) (client net.Conn, clientBuf *bufio.Reader, upstream net.Conn) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), fuzzIOWait)
	defer cancel()
	c, br, _, err := ws.Dialer{Protocols: []string{"chat"}}.Dial(ctx, "ws://"+fx.front+"/relay")
	if err != nil {
		t.Fatalf("tunnel: %v", err)
	}
	if br == nil {
		br = bufio.NewReader(c)
	}
	select {
	case up := <-fx.upConns:
		return c, br, up
	case <-time.After(fuzzIOWait):
		t.Fatal("the upstream got no connection")
	}
	return nil, nil, nil
}

// FuzzTunnelRelay sends arbitrary bytes from one peer of an open tunnel,
// then ends that peer's sending side, and checks what the other peer
// received until the proxy closed its connection.
func FuzzTunnelRelay(f *testing.F) {
	mask := [4]byte{1, 2, 3, 4}
	frameBytes := func(fr ws.Frame) []byte { b, _ := ws.CompileFrame(fr); return b }
	text := ws.NewTextFrame([]byte("hello"))
	f.Add(true, frameBytes(ws.MaskFrameInPlaceWith(ws.NewTextFrame([]byte("hello")), mask)))
	f.Add(false, frameBytes(text))
	f.Add(true, append(frameBytes(ws.MaskFrameInPlaceWith(ws.NewFrame(ws.OpText, false, []byte("hel")), mask)),
		frameBytes(ws.MaskFrameInPlaceWith(ws.NewFrame(ws.OpContinuation, true, []byte("lo")), mask))...))
	f.Add(true, append(frameBytes(ws.MaskFrameInPlaceWith(ws.NewPingFrame([]byte("p")), mask)),
		frameBytes(ws.MaskFrameInPlaceWith(ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusNormalClosure, "bye")), mask))...))
	f.Add(false, append(frameBytes(ws.NewCloseFrame(nil)), frameBytes(text)...))
	f.Add(true, frameBytes(text)) // unmasked from the client: a violation
	f.Add(false, frameBytes(ws.MaskFrameInPlaceWith(ws.NewTextFrame([]byte("x")), mask)))
	f.Add(true, []byte("GET / HTTP/1.1\r\nHost: a\r\n\r\n"))
	f.Add(false, []byte{0x82, 0x7f, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 'x'})
	f.Add(false, append(frameBytes(ws.NewFrame(ws.OpBinary, true, bytes.Repeat([]byte{0xab}, 70000))), 0x81))
	f.Add(true, []byte{0x89, 0xfe, 0x00, 0x80}) // a 128-byte ping
	f.Add(false, []byte{0x8b, 0x00})            // reserved opcode
	f.Add(false, []byte{0xc1, 0x01, 'x'})       // RSV1 without an extension
	f.Fuzz(relayOnce)
}

// TestTunnelHugeFrameLength is a crash the relay fuzzing found: a frame
// header announcing 2^63-1 bytes overflowed the count of bytes left to
// relay and panicked the proxy. Either peer could send it.
func TestTunnelHugeFrameLength(t *testing.T) {
	huge := []byte{0x82, 0x7f, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 'x'}
	relayOnce(t, false, huge)
	masked := []byte{0x82, 0xff, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xf6, 1, 2, 3, 4, 'x'}
	relayOnce(t, true, masked)
}

// relayOnce opens a tunnel on each relay, sends data from one peer, ends
// that peer's sending side and checks what the other peer received until
// the proxy closed its connection.
func relayOnce(t *testing.T, fromClient bool, data []byte) {
	for _, relay := range tunnel.Relays {
		relayOnceOn(t, relay, fromClient, data)
	}
}

// relayOnceOn is relayOnce on one relay.
func relayOnceOn(t *testing.T, relay tunnel.Relay, fromClient bool, data []byte) {
	defer logRelayOnFailure(t, relay)
	{
		fx := fixture(t, relay, false)
		baseline := runtime.NumGoroutine()
		client, clientBuf, up := dialTunnel(t, fx)
		defer client.Close()
		defer up.Close()
		writer, reader := up, io.Reader(clientBuf)
		readerConn := client
		if fromClient {
			writer, reader, readerConn = client, up, up
		}
		readerConn.SetReadDeadline(time.Now().Add(fuzzIOWait))
		got := make(chan []byte, 1)
		go func() {
			b, _ := io.ReadAll(reader)
			got <- b
		}()
		writer.SetWriteDeadline(time.Now().Add(fuzzIOWait))
		writer.Write(data)
		writer.(*net.TCPConn).CloseWrite()
		b := <-got
		var ne net.Error
		if _, err := readerConn.Read(make([]byte, 1)); errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("the tunnel stayed open %v after the sender stopped", fuzzIOWait)
		}
		checkRelayed(t, data, b, fromClient)
		client.Close()
		up.Close()
		fx.settle(t, baseline)
	}
}

// FuzzTunnelHandshake sends upgrade requests with arbitrary handshake
// header values (and methods and paths) through the proxy. Whatever they
// are, the proxy answers (an HTTP error, or 101), nothing panics, no tunnel
// or goroutine stays behind, and a 101 is a correct answer to the key with
// a subprotocol the client offered, over a tunnel that works.
func FuzzTunnelHandshake(f *testing.F) {
	key := base64.StdEncoding.EncodeToString([]byte("0123456789abcdef"))
	f.Add("GET", "/chat", "websocket", "Upgrade", "13", key, "chat", "", "")
	f.Add("GET", "/chat", "WebSocket", "keep-alive, Upgrade", "13", key, "other, chat", "permessage-deflate; client_max_window_bits", "https://app.example")
	f.Add("GET", "/chat", "websocket", "Upgrade", "8", key, "", "", "")
	f.Add("GET", "/chat", "websocket", "Upgrade", "13", "short", "", "", "")
	f.Add("POST", "/chat", "websocket", "Upgrade", "13", key, "", "", "")
	f.Add("GET", "/chat", "websocket", "Upgrade", "13", key, "", "", "https://evil.example")
	f.Add("GET", "/chat", "websocket", "close", "13", key, "", "", "")
	f.Add("GET", "/../chat", "websocket", "Upgrade", "13", key, ",,,", "x; y=\"", "null")
	f.Fuzz(func(t *testing.T, method, path, upgrade, connection, version, wsKey, protocols, extensions, origin string) {
		for _, relay := range tunnel.Relays {
			handshakeOnce(t, relay, method, path, upgrade, connection, version, wsKey, protocols, extensions, origin)
		}
	})
}

// handshakeOnce is one input of FuzzTunnelHandshake on one relay.
func handshakeOnce(t *testing.T, relay tunnel.Relay, method, path, upgrade, connection, version, wsKey, protocols, extensions, origin string) {
	defer logRelayOnFailure(t, relay)
	{
		fx := fixture(t, relay, true)
		baseline := runtime.NumGoroutine()
		var req strings.Builder
		fmt.Fprintf(&req, "%s %s HTTP/1.1\r\nHost: proxy.test\r\nUpgrade: %s\r\nConnection: %s\r\n", method, path, upgrade, connection)
		fmt.Fprintf(&req, "Sec-WebSocket-Version: %s\r\nSec-WebSocket-Key: %s\r\n", version, wsKey)
		if protocols != "" {
			fmt.Fprintf(&req, "Sec-WebSocket-Protocol: %s\r\n", protocols)
		}
		if extensions != "" {
			fmt.Fprintf(&req, "Sec-WebSocket-Extensions: %s\r\n", extensions)
		}
		if origin != "" {
			fmt.Fprintf(&req, "Origin: %s\r\n", origin)
		}
		req.WriteString("\r\n")

		c, err := net.Dial("tcp", fx.front)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(fuzzIOWait))
		io.WriteString(c, req.String())
		br := bufio.NewReader(c)
		res, err := http.ReadResponse(br, nil)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("no answer within %v to %q", fuzzIOWait, req.String())
		}
		if err == nil && res.StatusCode == http.StatusSwitchingProtocols {
			checkAccepted(t, c, br, res, wsKey, protocols)
		} else if err == nil && res.StatusCode < 400 {
			t.Fatalf("upgrade answered %d", res.StatusCode)
		}
		c.Close()
		fx.settle(t, baseline)
	}
}

// logRelayOnFailure names the relay of a fuzz input that failed (fuzz
// targets run no subtests).
func logRelayOnFailure(t *testing.T, relay tunnel.Relay) {
	if t.Failed() {
		t.Logf("relay: %v", relay)
	}
}

// checkAccepted checks a 101: the accept value, a subprotocol the client
// offered (or none), and a frame going through the tunnel and back.
func checkAccepted(t *testing.T, c net.Conn, br *bufio.Reader, res *http.Response, key, offered string) {
	t.Helper()
	sum := sha1.Sum([]byte(strings.TrimSpace(key) + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	if got, want := res.Header.Get("Sec-WebSocket-Accept"), base64.StdEncoding.EncodeToString(sum[:]); got != want {
		t.Fatalf("Sec-WebSocket-Accept %q, want %q", got, want)
	}
	if p := res.Header.Get("Sec-WebSocket-Protocol"); p != "" {
		found := false
		for _, o := range strings.Split(offered, ",") {
			found = found || strings.TrimSpace(o) == p
		}
		if !found {
			t.Fatalf("subprotocol %q was not offered (%q)", p, offered)
		}
	}
	if res.Header.Get("Sec-WebSocket-Extensions") != "" {
		return // the upstream negotiates no extension; nothing to check
	}
	if err := wsutil.WriteClientText(c, []byte("ping")); err != nil {
		t.Fatal(err)
	}
	msg, err := wsutil.ReadServerText(struct {
		io.Reader
		io.Writer
	}{br, c})
	if err != nil || string(msg) != "ping" {
		t.Fatalf("echo through the tunnel: %q, %v", msg, err)
	}
}
