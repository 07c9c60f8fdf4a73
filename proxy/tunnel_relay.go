package proxy

import (
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"
)

// Relay buffers. A direction waiting for its next frame holds only its
// small inline head area; a pooled buffer is taken when a read brings more
// than fits there or a frame is longer, and given back as soon as the
// direction has forwarded everything it read.
const (
	// relayHeadSize is the inline read area of one direction: any frame
	// header, any control frame (at most 125 bytes of payload) and small
	// data frames are read and forwarded from it in one read and one write.
	relayHeadSize = 256
	// relayBufSize is the size of pooled buffers for longer frames and bursts.
	relayBufSize = 32 << 10
)

var relayBufs = sync.Pool{New: func() any {
	b := make([]byte, relayBufSize)
	return &b
}}

// endpoint is one side of a tunnel.
type endpoint struct {
	conn net.Conn
	// client is true for the client side: frames written to it by the
	// proxy are not masked (RFC 6455 section 5.1).
	client bool
	// mu is held while a frame is written to conn, from its first byte to
	// its last, so the proxy's own Close frames go between frames.
	mu sync.Mutex
	// closeSent is set, under mu, once a Close frame was written to conn;
	// nothing is written to it afterwards.
	closeSent atomic.Bool
	// closeRecv is set once conn sent a Close frame.
	closeRecv atomic.Bool
}

// relayError says which side of a direction failed.
type relayError struct {
	side *endpoint // the endpoint whose read or write failed
	err  error
}

func (e *relayError) Error() string { return e.err.Error() }
func (e *relayError) Unwrap() error { return e.err }

// errProtocol is a frame a peer must not send (RFC 6455 section 5).
var errProtocol = errors.New("websocket protocol violation")

// pump relays frames from src to dst. Frames are parsed only to find their
// boundaries: header and payload bytes are written exactly as read, so
// masked client frames stay masked with the client's key and RSV bits
// (permessage-deflate) pass untouched.
type pump struct {
	t        *tunnel
	src, dst *endpoint
	dir      string // DirToUpstream or DirToClient
	// state checks frames with ws.CheckHeader: server side (frames must be
	// masked) when reading the client, client side when reading the
	// upstream; extended when an extension was negotiated; fragmented while
	// a fragmented message is in progress.
	state ws.State

	// The read window: unread bytes are win[r:w]. win is pending (bytes
	// buffered during the handshake), head, or a pooled buffer.
	win    []byte
	r, w   int
	pooled *[]byte
	head   [relayHeadSize]byte

	hr      sliceReader
	scratch [ws.MaxHeaderSize]byte

	relayed    int64 // bytes written to dst
	reported   int64 // part of relayed already passed to metrics
	lastReport int64 // unix nanoseconds
}

// sliceReader reads a byte slice; ws.ReadHeaderBuffer parses headers
// already in the window through it.
type sliceReader struct{ b []byte }

func (s *sliceReader) Read(p []byte) (int, error) {
	if len(s.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p, s.b)
	s.b = s.b[n:]
	return n, nil
}

// run relays until src or dst fails or the tunnel is torn down.
func (p *pump) run() error {
	defer p.putBuf()
	if len(p.win) == 0 {
		p.win = p.head[:]
	}
	for {
		if p.r == p.w {
			// Nothing unread: wait for the next frame holding no buffer.
			p.putBuf()
			if err := p.fill(1); err != nil {
				return err
			}
		}
		end, closed, err := p.scan()
		if err != nil {
			return err
		}
		if end > p.r {
			if err := p.forward(end, closed); err != nil {
				return err
			}
			continue
		}
		// The first frame is incomplete.
		h, hl, err := p.header(p.r)
		if err != nil {
			return err
		}
		switch {
		case hl == 0:
			// Not even its header is here.
			need := 2
			if p.w-p.r >= 2 {
				need = headerLen(p.win[p.r+1])
			}
			if err := p.fill(need); err != nil {
				return err
			}
		case h.OpCode.IsControl():
			// At most 125 bytes: read it whole, then scan again.
			if err := p.fill(hl + int(h.Length)); err != nil {
				return err
			}
		default:
			p.take(h)
			if err := p.stream(hl, h.Length); err != nil {
				return err
			}
		}
	}
}

// headerLen is the length of a frame header given its second byte.
func headerLen(b1 byte) int {
	n := 2
	if b1&0x80 != 0 {
		n += 4 // masking key
	}
	switch b1 & 0x7f {
	case 126:
		n += 2
	case 127:
		n += 8
	}
	return n
}

// header parses and checks the frame header at win[at:]; hl is 0 when the
// header is not complete yet.
func (p *pump) header(at int) (h ws.Header, hl int, err error) {
	if p.w-at < 2 {
		return h, 0, nil
	}
	hl = headerLen(p.win[at+1])
	if p.w-at < hl {
		return h, 0, nil
	}
	p.hr.b = p.win[at : at+hl]
	h, err = ws.ReadHeaderBuffer(&p.hr, p.scratch[:])
	if err == nil {
		err = ws.CheckHeader(h, p.state)
	}
	if err != nil {
		return h, 0, &relayError{side: p.src, err: errors.Join(errProtocol, err)}
	}
	return h, hl, nil
}

// take records that the frame with header h is being relayed: it moves the
// fragmentation state on.
func (p *pump) take(h ws.Header) {
	if h.OpCode.IsControl() {
		return
	}
	if h.Fin {
		p.state = p.state.Clear(ws.StateFragmented)
	} else {
		p.state = p.state.Set(ws.StateFragmented)
	}
}

// scan finds the run of complete frames at the start of the window. It
// stops after a Close frame. end is the window offset after the run
// (p.r when the first frame is incomplete).
func (p *pump) scan() (end int, closed bool, err error) {
	end = p.r
	for end < p.w {
		h, hl, err := p.header(end)
		if err != nil {
			return end, false, err
		}
		if hl == 0 || int64(p.w-end-hl) < h.Length {
			break
		}
		p.take(h)
		end += hl + int(h.Length)
		if h.OpCode == ws.OpClose {
			return end, true, nil
		}
	}
	return end, false, nil
}

// forward writes the complete frames win[r:end] to dst in one write. A run
// that ends with a Close frame marks both sides.
func (p *pump) forward(end int, closed bool) error {
	b := p.win[p.r:end]
	var code ws.StatusCode
	if closed {
		code = closeCode(b)
	}
	if closed {
		// Before the Close can reach the other peer and be answered.
		p.t.noteCloser(p.src, code)
	}
	dst := p.dst
	dst.mu.Lock()
	if !dst.closeSent.Load() && !p.src.closeRecv.Load() {
		if _, err := dst.conn.Write(b); err != nil {
			dst.mu.Unlock()
			return &relayError{side: dst, err: err}
		}
		p.relayed += int64(len(b))
		if closed {
			dst.closeSent.Store(true)
		}
	}
	dst.mu.Unlock()
	p.r = end
	if closed {
		p.src.closeRecv.Store(true)
		p.t.peerClosed()
	}
	return nil
}

// closeCode returns the status code of the Close frame that ends b.
func closeCode(b []byte) ws.StatusCode {
	// Walk to the last frame of the run.
	var last []byte
	for len(b) >= 2 {
		hl := headerLen(b[1])
		var sr sliceReader
		var scratch [ws.MaxHeaderSize]byte
		sr.b = b[:hl]
		h, err := ws.ReadHeaderBuffer(&sr, scratch[:])
		if err != nil {
			return 0
		}
		last, b = b[:hl+int(h.Length)], b[hl+int(h.Length):]
	}
	if len(last) < 2 {
		return 0
	}
	hl := headerLen(last[1])
	payload := last[hl:]
	if len(payload) < 2 {
		return 0
	}
	var code [2]byte
	copy(code[:], payload)
	if last[1]&0x80 != 0 {
		var mask [4]byte
		copy(mask[:], last[hl-4:hl])
		ws.Cipher(code[:], mask, 0)
	}
	return ws.StatusCode(uint16(code[0])<<8 | uint16(code[1]))
}

// stream relays a data frame longer than what the window holds: header
// length hl, payload length n, starting at win[r]. It holds dst's write
// lock from the frame's first byte to its last.
func (p *pump) stream(hl int, n int64) error {
	left := int64(hl) + n
	dst := p.dst
	dst.mu.Lock()
	defer dst.mu.Unlock()
	drop := dst.closeSent.Load() || p.src.closeRecv.Load()
	if p.pooled == nil {
		p.getBuf()
	}
	for {
		k := min(int64(p.w-p.r), left)
		if k > 0 {
			if !drop {
				if _, err := dst.conn.Write(p.win[p.r : p.r+int(k)]); err != nil {
					return &relayError{side: dst, err: err}
				}
				p.relayed += k
			}
			p.r += int(k)
			left -= k
		}
		if left == 0 {
			return nil
		}
		p.r, p.w = 0, 0
		if err := p.read(); err != nil {
			return err
		}
	}
}

// fill reads until at least n unread bytes are in the window, making room
// first when the window cannot hold them from r on.
func (p *pump) fill(n int) error {
	if len(p.win)-p.r < n {
		p.relocate(n)
	}
	for p.w-p.r < n {
		if err := p.read(); err != nil {
			return err
		}
	}
	return nil
}

// read reads once into the free end of the window.
func (p *pump) read() error {
	m, err := p.src.conn.Read(p.win[p.w:])
	if m > 0 {
		p.w += m
		p.touch()
	}
	if err != nil && m == 0 {
		return &relayError{side: p.src, err: err}
	}
	return nil
}

// relocate moves the unread bytes to the start of a window that can hold n
// bytes: head when they fit, a pooled buffer otherwise.
func (p *pump) relocate(n int) {
	unread := p.win[p.r:p.w]
	switch {
	case n <= relayHeadSize && p.pooled == nil:
		// From pending or within head; copy handles the overlap.
		p.w = copy(p.head[:], unread)
		p.win = p.head[:]
	case p.pooled != nil:
		p.w = copy(*p.pooled, unread)
	default:
		b := relayBufs.Get().(*[]byte)
		p.w = copy(*b, unread)
		p.pooled, p.win = b, *b
	}
	p.r = 0
}

// getBuf moves the window into a pooled buffer.
func (p *pump) getBuf() { p.relocate(relayHeadSize + 1) }

// putBuf gives the pooled buffer back when nothing unread is in it.
func (p *pump) putBuf() {
	if p.r != p.w {
		return
	}
	if p.pooled != nil {
		relayBufs.Put(p.pooled)
		p.pooled = nil
	}
	p.win, p.r, p.w = p.head[:], 0, 0
}

// touch notes traffic for the idle timeout and, about once a second,
// passes the bytes relayed to the metrics.
func (p *pump) touch() {
	now := time.Now().UnixNano()
	p.t.lastActive.Store(now)
	if now-p.lastReport >= int64(time.Second) {
		p.report(now)
	}
}

// report passes the bytes relayed since the last report to the metrics.
func (p *pump) report(now int64) {
	if d := p.relayed - p.reported; d > 0 {
		p.t.owner.m.Relayed(p.t.rule, p.dir, d)
		p.reported = p.relayed
	}
	p.lastReport = now
}
