package tunnel

import (
	"errors"
	"io"
	"math"
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
	// relayBufSize is the size of pooled buffers for longer frames and
	// bursts. Measured with 32 KiB frames against httputil's 32 KiB copy
	// buffer: 64 KiB halves the reads and writes and is faster; larger
	// buffers gained nothing more.
	relayBufSize = 64 << 10
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
	// tcp is conn as a plain TCP connection once it is known to be one
	// (set at once, or by its reader when a wrapping connection passes
	// through): splicing needs it on both sides.
	tcp atomic.Pointer[net.TCPConn]
}

// passthrougher is a wrapping connection (the listener's request guard)
// that can hand its reader the connection it wraps once it has nothing
// more to do: reading that directly is the same as reading the wrapper.
// Writing through the wrapper is writing to the wrapped connection.
type passthrougher interface {
	Passthrough() (net.Conn, bool)
}

// setConn sets the endpoint's connection and, when it is plain TCP,
// publishes it for splicing.
func (e *endpoint) setConn(c net.Conn) {
	e.conn = c
	if tc, ok := c.(*net.TCPConn); ok {
		e.tcp.Store(tc)
	}
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

// errFrameLength is a frame whose length cannot be relayed.
var errFrameLength = errors.New("frame length out of range")

// pump relays frames from src to dst. Frames are parsed only to find their
// boundaries: header and payload bytes are written exactly as read, so
// masked client frames stay masked with the client's key and RSV bits
// (permessage-deflate) pass untouched. Whatever one read brought is
// forwarded in one write, across frame boundaries, as long as no Close is
// among it; dst's write lock is held from a frame's first byte to its last
// (and released at every boundary the relay reaches), so the proxy's own
// Close frames go between frames.
type pump struct {
	t        *tunnel
	src, dst *endpoint
	// state checks frames with ws.CheckHeader: server side (frames must be
	// masked) when reading the client, client side when reading the
	// upstream; extended when an extension was negotiated; fragmented while
	// a fragmented message is in progress.
	state ws.State

	// rd is what the pump reads: src.conn, or the connection it wraps
	// once that passed through (direct).
	rd     net.Conn
	direct bool

	// The read window: unread bytes are win[r:w], of which win[r:c] were
	// walked and can be forwarded. win is pending (bytes buffered during
	// the handshake), head, or a pooled buffer.
	win         []byte
	r, c, w     int
	partialOnly bool // win[r:c] is all inside one unfinished frame
	pooled      *[]byte
	// hot is set when the last read filled the pooled buffer: more bytes
	// are probably waiting, so the next read goes to that buffer again
	// rather than to head. (A peer that falls silent right after such a
	// read leaves the buffer with its direction until the next read.)
	hot  bool
	head [relayHeadSize]byte

	left   int64 // bytes of the current frame not yet forwarded; 0 at a boundary
	locked bool  // dst.mu is held (mid-frame)

	hr      sliceReader
	scratch [ws.MaxHeaderSize]byte

	relayed  int64 // bytes written to dst
	reported int64 // part of relayed already passed to metrics
	// shown is relayed as of the last report, for Describe.
	shown      atomic.Int64
	lastReport int64 // unix nanoseconds

	// splicing is set, under spliceMu, while the kernel moves a frame's
	// rest from src to dst; beginClose interrupts it (interruptSplice).
	spliceMu sync.Mutex
	splicing bool
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
	defer func() {
		if p.locked {
			p.dst.mu.Unlock()
			p.locked = false
		}
		p.r, p.c, p.w = 0, 0, 0
		p.putBuf()
	}()
	if len(p.win) == 0 {
		p.win = p.head[:]
	}
	for {
		if p.r == p.w {
			if err := p.readNext(); err != nil {
				return err
			}
		}
		closeAt, need, err := p.walk()
		if err != nil {
			return err
		}
		switch {
		case p.c == p.r:
			// A header, or a control frame (forwarded whole), is not
			// complete yet.
			if err := p.fill(need); err != nil {
				return err
			}
		case closeAt < 0 && p.left > 0 && p.partialOnly && p.spliceable():
			// A long payload between two TCP sockets: write what the
			// window holds, then let the kernel move the rest.
			if err := p.forward(-1); err != nil {
				return err
			}
			if err := p.splice(); err != nil {
				return err
			}
		case closeAt < 0 && p.left > 0 && p.partialOnly && p.pooled == nil && p.w == len(p.win):
			// The small window is full of the start of a longer frame:
			// more of it is waiting. Read it before writing, so that it
			// goes out in one write rather than two.
			p.getBuf()
			if err := p.read(); err != nil {
				return err
			}
		default:
			if err := p.forward(closeAt); err != nil {
				return err
			}
		}
	}
}

// walk moves c, the end of what can be forwarded, through complete frames
// and into a data frame the window holds only the start of, stopping after
// a Close frame. closeAt is the offset of the Close frame that ends the
// walked bytes, or -1. When c could not move from r, need is the number of
// bytes required from r. partialOnly is set when everything from r to c
// belongs to one unfinished frame.
func (p *pump) walk() (closeAt, need int, err error) {
	closeAt = -1
	start := p.r // where the last frame walked into began
	for p.c < p.w {
		if p.left == 0 {
			h, hl, err := p.header(p.c)
			if err != nil {
				return -1, 0, err
			}
			if hl == 0 {
				need = 2
				if p.w-p.c >= 2 {
					need = headerLen(p.win[p.c+1])
				}
				break
			}
			if h.OpCode.IsControl() && int64(p.w-p.c-hl) < h.Length {
				need = hl + int(h.Length)
				break
			}
			p.take(h)
			p.left = int64(hl) + h.Length
			start = p.c
			if h.OpCode == ws.OpClose {
				closeAt = p.c
			}
		}
		k := min(p.left, int64(p.w-p.c))
		p.c += int(k)
		p.left -= k
		if closeAt >= 0 {
			break
		}
	}
	p.partialOnly = p.left > 0 && start <= p.r
	return closeAt, need, nil
}

// forward writes win[r:c] to dst in one write. When closeAt >= 0, the
// bytes end with the Close frame at closeAt: both sides are marked.
func (p *pump) forward(closeAt int) error {
	b := p.win[p.r:p.c]
	var code ws.StatusCode
	if closeAt >= 0 {
		if p.t.closeDecided.Load() {
			// Most likely an answer to the proxy's Close: the wheel
			// writes the other tunnels' first.
			p.t.owner.wheel.AwaitFirstSteps()
		}
		code = closeCode(p.win[closeAt:p.c])
		// Before the Close can reach the other peer and be answered.
		p.t.noteCloser(p.src, code)
	}
	dst := p.dst
	if !p.locked && !dst.closeSent.Load() {
		// (closeSent never goes back to false: once set, nothing is
		// written to dst and its lock is not needed.)
		dst.mu.Lock()
		p.locked = true
	}
	// Nothing goes to a peer after a Close, nor from a peer after its Close.
	if !dst.closeSent.Load() && !p.src.closeRecv.Load() {
		if _, err := dst.conn.Write(b); err != nil {
			return &relayError{side: dst, err: err}
		}
		p.relayed += int64(len(b))
		if closeAt >= 0 {
			dst.closeSent.Store(true)
		}
	}
	p.r = p.c
	if p.left == 0 && p.locked {
		// At a frame boundary: the proxy may write its own frames.
		dst.mu.Unlock()
		p.locked = false
	} else if p.locked && p.t.closeDecided.Load() {
		// In the middle of a frame and the tunnel is closing: nothing
		// more goes to dst (see splice; the copy path drops the rest).
		p.stopMidFrame()
	}
	if closeAt >= 0 {
		p.src.closeRecv.Store(true)
		p.t.peerClosed()
	}
	return nil
}

// spliceable reports whether the frame's rest can be spliced: long enough
// (Options.SpliceMin), both sides plain TCP and the bytes actually going to
// dst.
func (p *pump) spliceable() bool {
	from := p.t.owner.opts.SpliceMin
	return from > 0 && p.left >= from && p.src.tcp.Load() != nil && p.dst.tcp.Load() != nil && p.c == p.w &&
		!p.dst.closeSent.Load() && !p.src.closeRecv.Load()
}

// spliceChunk is how much one splice call moves at most. Between chunks
// the relay records activity (a long upload is not idle) and looks for a
// Close the tunnel has decided on.
const spliceChunk = 64 << 10

// splice moves the rest of the current frame from src to dst in the
// kernel, in chunks of spliceChunk; dst's write lock is held. Every chunk
// counts as activity for the idle timeout.
//
// Once the tunnel decides to close (closeDecided; beginClose also cuts a
// chunk short through interruptSplice) nothing more goes to dst: a Close
// cannot be put inside the frame, so dst is marked as having had its Close,
// the lock is released, and the copy path reads and drops the rest of the
// frame and what follows until src's own Close, so the closing handshake
// with src completes normally. dst's connection ends with the tunnel.
func (p *pump) splice() error {
	if p.dst.closeSent.Load() || p.src.closeRecv.Load() {
		// A Close went in before the lock was taken: the rest of the
		// frame is read and dropped by the copy path.
		return nil
	}
	src, dst := p.src.tcp.Load(), p.dst.tcp.Load()
	p.spliceMu.Lock()
	p.splicing = true
	p.spliceMu.Unlock()
	defer func() {
		p.spliceMu.Lock()
		p.splicing = false
		_ = src.SetReadDeadline(time.Time{}) // undo an interrupt
		p.spliceMu.Unlock()
	}()
	for p.left > 0 {
		// splicing is set before closeDecided is read, and beginClose sets
		// closeDecided before it looks at splicing: one sees the other.
		if p.t.closeDecided.Load() {
			p.stopMidFrame()
			return nil
		}
		lr := io.LimitedReader{R: src, N: min(p.left, spliceChunk)}
		n, err := dst.ReadFrom(&lr)
		p.relayed += n
		p.left -= n
		if n > 0 {
			p.touch()
		}
		if p.t.closeDecided.Load() && p.left > 0 {
			p.stopMidFrame()
			return nil
		}
		if err != nil {
			return &relayError{side: p.src, err: err}
		}
		if n == 0 {
			return &relayError{side: p.src, err: io.ErrUnexpectedEOF}
		}
	}
	p.dst.mu.Unlock()
	p.locked = false
	return nil
}

// stopMidFrame ends relaying to dst in the middle of a frame (see splice).
func (p *pump) stopMidFrame() {
	p.dst.closeSent.Store(true)
	p.dst.mu.Unlock()
	p.locked = false
}

// interruptSplice makes a splice in progress return now (its source's
// read deadline is moved to the past; splice restores it).
func (p *pump) interruptSplice() {
	p.spliceMu.Lock()
	defer p.spliceMu.Unlock()
	if p.splicing {
		_ = p.src.conn.SetReadDeadline(time.Now())
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
	if err == nil && h.Length > math.MaxInt64-int64(hl) {
		// The frame's end (header and payload) must fit an int64: a
		// length near 2^63 would overflow the bytes left to relay.
		err = errFrameLength
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

// closeCode returns the status code in the Close frame b (0 if none).
func closeCode(b []byte) ws.StatusCode {
	if len(b) < 2 {
		return 0
	}
	hl := headerLen(b[1])
	if len(b) < hl+2 {
		return 0
	}
	var code [2]byte
	copy(code[:], b[hl:])
	if b[1]&0x80 != 0 {
		var mask [4]byte
		copy(mask[:], b[hl-4:hl])
		ws.Cipher(code[:], mask, 0)
	}
	return ws.StatusCode(uint16(code[0])<<8 | uint16(code[1]))
}

// readNext reads into the emptied window. Between frames it waits holding
// no buffer (unless hot); inside a frame it reads into a pooled buffer.
func (p *pump) readNext() error {
	switch {
	case p.left > 0:
		if p.pooled == nil {
			p.getBuf()
		}
		p.r, p.c, p.w = 0, 0, 0
	case p.hot:
		p.r, p.c, p.w = 0, 0, 0
	default:
		p.putBuf()
	}
	return p.read()
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
	if !p.direct {
		p.passThrough()
	}
	free := len(p.win) - p.w
	m, err := p.rd.Read(p.win[p.w:])
	if m > 0 {
		p.w += m
		p.hot = p.pooled != nil && m == free
		p.touch()
	}
	if err != nil && m == 0 {
		return &relayError{side: p.src, err: err}
	}
	return nil
}

// passThrough reads the connection src wraps, once it may.
func (p *pump) passThrough() {
	if p.rd == nil {
		p.rd = p.src.conn
	}
	pt, ok := p.src.conn.(passthrougher)
	if !ok {
		p.direct = true
		return
	}
	inner, ok := pt.Passthrough()
	if !ok {
		return
	}
	p.rd, p.direct = inner, true
	if tc, ok := inner.(*net.TCPConn); ok {
		p.src.tcp.Store(tc)
	}
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
	p.c -= p.r
	p.r = 0
}

// getBuf moves the window into a pooled buffer.
func (p *pump) getBuf() { p.relocate(relayHeadSize + 1) }

// putBuf gives the pooled buffer back; the window must be empty.
func (p *pump) putBuf() {
	if p.pooled != nil {
		relayBufs.Put(p.pooled)
		p.pooled = nil
	}
	p.win, p.r, p.c, p.w, p.hot = p.head[:], 0, 0, 0, false
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
		dir := DirToClient
		if p.src.client {
			dir = DirToUpstream
		}
		p.t.owner.m.Relayed(p.t.rule, dir, d)
		p.reported = p.relayed
		p.shown.Store(p.relayed)
	}
	p.lastReport = now
}
