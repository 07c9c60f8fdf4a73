package tunnel

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/httphead"
	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsflate"

	"github.com/portcullis-proxy/portcullis/internal/httpguard"
)

func TestTunnelFragmentedWithPings(t *testing.T) {
	up := newUpstream(t)
	h := newHarness(t, up.url())
	c := h.dial("/frag", dialOpts{})

	// One text message in three fragments with two pings between them,
	// each frame masked with its own key.
	sent := []struct {
		op      ws.OpCode
		fin     bool
		payload string
		mask    [4]byte
	}{
		{op: ws.OpText, fin: false, payload: "Hel", mask: [4]byte{1, 2, 3, 4}},
		{op: ws.OpPing, fin: true, payload: "p1", mask: [4]byte{5, 6, 7, 8}},
		{op: ws.OpContinuation, fin: false, payload: "lo, ", mask: [4]byte{9, 10, 11, 12}},
		{op: ws.OpPing, fin: true, payload: "p2", mask: [4]byte{13, 14, 15, 16}},
		{op: ws.OpContinuation, fin: true, payload: "World", mask: [4]byte{17, 18, 19, 20}},
	}
	var wire bytes.Buffer
	for _, s := range sent {
		f := ws.MaskFrameInPlaceWith(ws.NewFrame(s.op, s.fin, []byte(s.payload)), s.mask)
		if err := ws.WriteFrame(&wire, f); err != nil {
			t.Fatal(err)
		}
	}
	// All frames in one write: the proxy finds the boundaries in one read.
	if _, err := c.conn.Write(wire.Bytes()); err != nil {
		t.Fatal(err)
	}

	// The upstream echoes fragments and answers pings in order.
	want := []struct {
		op      ws.OpCode
		fin     bool
		payload string
	}{
		{op: ws.OpText, fin: false, payload: "Hel"},
		{op: ws.OpPong, fin: true, payload: "p1"},
		{op: ws.OpContinuation, fin: false, payload: "lo, "},
		{op: ws.OpPong, fin: true, payload: "p2"},
		{op: ws.OpContinuation, fin: true, payload: "World"},
	}
	for i, w := range want {
		f := c.read()
		if f.h.OpCode != w.op || f.h.Fin != w.fin || string(f.payload) != w.payload {
			t.Errorf("frame %d to the client = (%v, fin %v, %q), want (%v, fin %v, %q)", i, f.h.OpCode, f.h.Fin, f.payload, w.op, w.fin, w.payload)
		}
	}
	got := up.received()
	if len(got) != len(sent) {
		t.Fatalf("upstream received %d frames, want %d", len(got), len(sent))
	}
	for i, s := range sent {
		g := got[i]
		if g.h.OpCode != s.op || g.h.Fin != s.fin || string(g.payload) != s.payload || !g.h.Masked || g.h.Mask != s.mask {
			t.Errorf("frame %d at the upstream = (%v, fin %v, %q, mask %v), want (%v, fin %v, %q, mask %v)", i, g.h.OpCode, g.h.Fin, g.payload, g.h.Mask, s.op, s.fin, s.payload, s.mask)
		}
	}
}

func TestTunnelLargeMessage(t *testing.T) {
	t.Parallel()
	up := newUpstream(t)
	h := newHarness(t, up.url())
	c := h.dial("/large", dialOpts{})

	payload := make([]byte, 16<<20)
	for i := range payload {
		payload[i] = byte(i * 7)
	}
	sum := sha256.Sum256(payload)
	f := c.echo(payload)
	if f.h.OpCode != ws.OpBinary || len(f.payload) != len(payload) || sha256.Sum256(f.payload) != sum {
		t.Fatalf("echo of 16 MiB: op %v, %d bytes, intact %v", f.h.OpCode, len(f.payload), sha256.Sum256(f.payload) == sum)
	}
}

func TestTunnelPermessageDeflate(t *testing.T) {
	up := newUpstream(t)
	up.negotiator = func() func(httphead.Option) (httphead.Option, error) {
		e := &wsflate.Extension{Parameters: wsflate.DefaultParameters}
		return e.Negotiate
	}
	up.onConn = func(conn net.Conn) {
		// A deflate-capable server: decompress, answer compressed.
		_ = conn.SetReadDeadline(time.Now().Add(ioWait))
		f, err := readFrameFrom(conn)
		if err != nil || f.h.Rsv&0x4 == 0 {
			return
		}
		in, err := wsflate.DecompressFrame(ws.Frame{Header: ws.Header{Fin: true, OpCode: f.h.OpCode, Rsv: f.h.Rsv, Length: int64(len(f.payload))}, Payload: f.payload})
		if err != nil {
			return
		}
		out, err := wsflate.CompressFrame(ws.NewTextFrame([]byte(strings.ToUpper(string(in.Payload)))))
		if err != nil {
			return
		}
		_ = ws.WriteFrame(conn, out)
		_, _ = expectCloseOn(conn)
	}
	h := newHarness(t, up.url())
	c := h.dial("/deflate", dialOpts{extensions: []httphead.Option{wsflate.DefaultParameters.Option()}})
	if len(c.hs.Extensions) != 1 || string(c.hs.Extensions[0].Name) != wsflate.ExtensionName {
		t.Fatalf("client negotiated %v, want permessage-deflate", c.hs.Extensions)
	}
	if got := up.lastRequest().Header.Get("Sec-WebSocket-Extensions"); !strings.Contains(got, wsflate.ExtensionName) {
		t.Fatalf("upstream was offered %q", got)
	}

	msg := strings.Repeat("compress me, ", 100)
	f, err := wsflate.CompressFrame(ws.NewTextFrame([]byte(msg)))
	if err != nil {
		t.Fatal(err)
	}
	if err := ws.WriteFrame(c.conn, ws.MaskFrameInPlace(f)); err != nil {
		t.Fatal(err)
	}
	r := c.read()
	if r.h.Rsv&0x4 == 0 {
		t.Fatalf("answer reached the client without RSV1")
	}
	if int(r.h.Length) >= len(msg) {
		t.Errorf("answer of %d bytes is not compressed (message %d bytes)", r.h.Length, len(msg))
	}
	dec, err := wsflate.DecompressFrame(ws.Frame{Header: r.h, Payload: r.payload})
	if err != nil {
		t.Fatalf("decompress: %v", err)
	}
	if string(dec.Payload) != strings.ToUpper(msg) {
		t.Errorf("decompressed answer = %.40q..., want %.40q...", dec.Payload, strings.ToUpper(msg))
	}
	c.write(ws.OpClose, true, ws.NewCloseFrameBody(ws.StatusNormalClosure, ""))
	if f := c.read(); f.h.OpCode != ws.OpClose {
		t.Errorf("answer to Close = %v, want Close", f.h.OpCode)
	}
}

// TestTunnelBytesAfterUpgrade: frames an upstream sends in the same packet
// as its 101 reach the client.
func TestTunnelBytesAfterUpgrade(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		var out bytes.Buffer
		if _, err := (ws.Upgrader{}).Upgrade(struct {
			io.Reader
			io.Writer
		}{conn, &out}); err != nil {
			return
		}
		_ = ws.WriteFrame(&out, ws.NewTextFrame([]byte("greeting")))
		_ = ws.WriteFrame(&out, ws.NewBinaryFrame(bytes.Repeat([]byte{9}, 1000)))
		if _, err := conn.Write(out.Bytes()); err != nil { // one write: 101 and frames together
			return
		}
		_, _ = expectCloseOn(conn)
	}()
	h := newHarness(t, "http://"+ln.Addr().String())
	c := h.dial("/early", dialOpts{})
	if f := c.read(); f.h.OpCode != ws.OpText || string(f.payload) != "greeting" {
		t.Errorf("first frame = %v %q, want text \"greeting\"", f.h.OpCode, f.payload)
	}
	if f := c.read(); f.h.OpCode != ws.OpBinary || len(f.payload) != 1000 {
		t.Errorf("second frame = %v of %d bytes, want binary of 1000", f.h.OpCode, len(f.payload))
	}
}

// TestTunnelClientFramesWithRequest: frames a client sends right behind its
// upgrade request (read by the HTTP server with the request) reach the
// upstream.
func TestTunnelClientFramesWithRequest(t *testing.T) {
	up := newUpstream(t)
	h := newHarness(t, up.url())
	conn, err := net.Dial("tcp", strings.TrimPrefix(h.front.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	key := base64.StdEncoding.EncodeToString([]byte("0123456789abcdef"))
	var out bytes.Buffer
	fmt.Fprintf(&out, "GET /pipelined HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n", strings.TrimPrefix(h.front.URL, "http://"), key)
	_ = ws.WriteFrame(&out, ws.MaskFrameInPlace(ws.NewTextFrame([]byte("before the 101"))))
	if _, err := conn.Write(out.Bytes()); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(ioWait))
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("status %d, want 101", resp.StatusCode)
	}
	f, err := readFrameFrom(br)
	if err != nil {
		t.Fatal(err)
	}
	if string(f.payload) != "before the 101" {
		t.Errorf("echo = %q, want %q", f.payload, "before the 101")
	}
}

func TestTunnelProtocolViolation(t *testing.T) {
	up := newUpstream(t)
	h := newHarness(t, up.url())
	tests := []struct {
		name  string
		frame ws.Frame
	}{
		{name: "unmasked client frame", frame: ws.NewTextFrame([]byte("not masked"))},
		{name: "control frame over 125 bytes", frame: ws.MaskFrameInPlace(ws.NewPingFrame(make([]byte, 126)))},
		{name: "fragmented control frame", frame: ws.MaskFrameInPlace(ws.NewFrame(ws.OpPing, false, []byte("x")))},
		{name: "RSV bit without extension", frame: ws.MaskFrameInPlace(ws.Frame{Header: ws.Header{Fin: true, OpCode: ws.OpText, Rsv: 4, Length: 1}, Payload: []byte("x")})},
		{name: "continuation without a start", frame: ws.MaskFrameInPlace(ws.NewFrame(ws.OpContinuation, true, []byte("x")))},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := h.dial("/bad", dialOpts{})
			c.t = t
			if err := ws.WriteFrame(c.conn, tc.frame); err != nil {
				t.Fatal(err)
			}
			c.expectEnd()
			waitFor(t, "protocol error counted", func() bool { return h.metrics.closedWith(ReasonProtocolError) == i+1 })
		})
	}
	if n := len(up.received()); n != 0 {
		t.Errorf("upstream received %d frames of the violations, want 0", n)
	}
}

// TestTunnelOverTLS: a wss upstream (https in the rule) behind a TLS front:
// nothing can be spliced, everything goes through the copy path.
func TestTunnelOverTLS(t *testing.T) {
	up := &upstream{t: t}
	up.srv = httptest.NewTLSServer(http.HandlerFunc(up.serve))
	t.Cleanup(up.srv.Close)
	roots := up.srv.Client().Transport.(*http.Transport).TLSClientConfig
	h := newHarnessWith(t, up.srv.URL, httptest.NewTLSServer, func(o *Options) { o.TLSConfig = roots })
	if !strings.HasPrefix(h.wsURL("/"), "wss://") || !strings.HasPrefix(up.srv.URL, "https://") {
		t.Fatalf("not TLS: front %s, upstream %s", h.wsURL("/"), up.srv.URL)
	}
	c := h.dial("/tls", dialOpts{})
	for _, size := range []int{10, 1 << 20} {
		payload := bytes.Repeat([]byte{'t'}, size)
		if f := c.echo(payload); !bytes.Equal(f.payload, payload) {
			t.Errorf("echo of %d bytes over TLS: got %d bytes", size, len(f.payload))
		}
	}
	if r := up.lastRequest(); r == nil || r.TLS == nil {
		t.Errorf("the upstream was not reached over TLS")
	}
}

// TestTunnelDribble: frames that arrive a few bytes at a time (headers cut
// anywhere, payloads longer and shorter than the inline read area) come
// out whole and in order.
func TestTunnelDribble(t *testing.T) {
	up := newUpstream(t)
	h := newHarness(t, up.url())
	type sent struct {
		op      ws.OpCode
		payload []byte
	}
	frames := []sent{
		{op: ws.OpText, payload: []byte("hi")},
		{op: ws.OpBinary, payload: bytes.Repeat([]byte{1}, 300)},
		{op: ws.OpPing, payload: []byte("ping!")},
		{op: ws.OpBinary, payload: bytes.Repeat([]byte{2}, 3000)},
		{op: ws.OpText, payload: bytes.Repeat([]byte("z"), 125)},
	}
	var wire bytes.Buffer
	for _, f := range frames {
		_ = ws.WriteFrame(&wire, ws.MaskFrameInPlace(ws.NewFrame(f.op, true, append([]byte(nil), f.payload...))))
	}
	for _, chunk := range []int{1, 3, 7, 250} {
		t.Run(fmt.Sprintf("%d bytes a write", chunk), func(t *testing.T) {
			c := h.dial("/dribble", dialOpts{})
			c.t = t
			go func() {
				b := wire.Bytes()
				for len(b) > 0 {
					n := min(chunk, len(b))
					if _, err := c.conn.Write(b[:n]); err != nil {
						return
					}
					b = b[n:]
				}
			}()
			for i, f := range frames {
				want := f.op
				if want == ws.OpPing {
					want = ws.OpPong
				}
				g := c.read()
				if g.h.OpCode != want || !bytes.Equal(g.payload, f.payload) {
					t.Errorf("frame %d: %v of %d bytes, want %v of %d", i, g.h.OpCode, len(g.payload), want, len(f.payload))
				}
			}
		})
	}
}

// TestTunnelBehindGuard: behind the listener's request guard, the client's
// connection is a wrapper; once the guard lets it pass through, the relay
// reads the TCP connection itself and long payloads are spliced again.
func TestTunnelBehindGuard(t *testing.T) {
	up := newUpstream(t)
	guarded := func(h http.Handler) *httptest.Server {
		ts := httptest.NewUnstartedServer(h)
		ts.Listener = httpguard.Protect(ts.Config, ts.Listener)
		ts.Start()
		return ts
	}
	h := newHarnessWith(t, up.url(), guarded, nil)
	c := h.dial("/guarded", dialOpts{})
	for _, size := range []int{5, 1 << 20} {
		payload := bytes.Repeat([]byte{'g'}, size)
		if f := c.echo(payload); !bytes.Equal(f.payload, payload) {
			t.Fatalf("echo of %d bytes behind the guard: got %d bytes", size, len(f.payload))
		}
	}
	h.tunnels.mu.Lock()
	defer h.tunnels.mu.Unlock()
	for tun := range h.tunnels.live {
		if tun.client.tcp.Load() == nil {
			t.Errorf("the client's TCP connection was not reached through the guard")
		}
		if _, wrapped := tun.client.conn.(passthrougher); !wrapped {
			t.Errorf("the client's connection is %T, not the guard's wrapper", tun.client.conn)
		}
	}
}
