package httpguard

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// poison replaces the bytes of a refused message: a NUL is invalid in every
// element of a request net/http parses (method, target, version, field name
// or value, chunk size, chunk end, trailer), so net/http fails on the line
// it lands in, answers 400 Bad Request when it was reading a header block,
// and closes the connection.
const poison = "\x00\r\n\r\n"

// maxHeld bounds the bytes a connection holds back: the end of a header
// block with its first chunk-size line (at most about 8 KiB), or what a
// client sends after an upgrade request before it has its answer (RFC 6455
// §4.1: it "MUST wait for a response from the server before sending any
// further data").
const maxHeld = 64 << 10

// heldSize is the size of the pooled buffers held bytes live in.
const heldSize = 8 << 10

var heldBufs = sync.Pool{New: func() any { b := make([]byte, 0, heldSize); return &b }}

// errHeldOverflow ends a connection that sent more than maxHeld bytes while
// the server could not read them yet.
var errHeldOverflow = errors.New("httpguard: too many bytes before the server's answer")

type mode uint8

const (
	modeHTTP     mode = iota // requests are judged
	modeUpgrade              // an upgrade request was delivered; the rest waits
	modeOpaque               // the connection was hijacked: bytes pass untouched
	modePoisoned             // a message was refused: poison, then EOF
)

// Conn is a server-side connection whose incoming bytes are judged before
// net/http reads them. See the package documentation.
type Conn struct {
	net.Conn

	// Read state: only the goroutine reading the connection touches it
	// (net/http never reads a connection from two goroutines at once).
	mode mode
	p    parser
	// held is read and not yet delivered: held[hd:hr] may be delivered,
	// held[hr:hs] is scanned and waits for a verdict (a hold), held[hs:] is
	// not scanned yet.
	held      *[]byte
	hd, hr    int
	hs        int
	holding   bool
	holdStart int
	// served counts requests the server finished (idle signals);
	// upgradeAt is the number of the message that may have switched
	// protocols (the parser counts messages from 1).
	served    int
	upgradeAt int
	poison    string

	// Set by the ConnState hook, taken by the reading side: requests
	// finished with the connection kept (StateIdle), and whether the
	// handler took the connection over (StateHijacked).
	idles    atomic.Int32
	hijacked atomic.Bool
	refused  atomic.Bool // a message was refused
	closeOne sync.Once
}

// NewConn wraps c. The server serving it must report its connection states
// to [ConnState] (see [Protect]).
func NewConn(c net.Conn) *Conn { return &Conn{Conn: c} }

// Refused reports whether a message on the connection was refused.
func (c *Conn) Refused() bool { return c.refused.Load() }

// TLSConnectionState returns the state of the TLS connection c wraps, if it
// wraps one.
func (c *Conn) TLSConnectionState() (tls.ConnectionState, bool) {
	if tc, ok := c.Conn.(*tls.Conn); ok {
		return tc.ConnectionState(), true
	}
	return tls.ConnectionState{}, false
}

// Passthrough returns the wrapped connection once the guard has nothing
// more to do on c: the handler took the connection over and every byte the
// guard held was read. Reading the wrapped connection directly is then the
// same as reading c, and lets the kernel move data (splice) between it and
// another TCP connection. It is for the goroutine that reads c.
func (c *Conn) Passthrough() (net.Conn, bool) {
	if !c.hijacked.Load() || c.hd < c.heldLen() {
		return nil, false
	}
	// Nothing will read c again: give its held buffer back now, or an idle
	// tunnel would keep it for its whole life.
	c.putHeld()
	return c.Conn, true
}

// Read implements net.Conn. It delivers the connection's bytes unchanged
// up to a refused message, whose place it gives to [poison].
func (c *Conn) Read(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	c.takeSignals()
	for {
		switch c.mode {
		case modeOpaque:
			if c.hd < c.heldLen() {
				n := copy(b, (*c.held)[c.hd:])
				c.hd += n
				return n, nil
			}
			c.putHeld()
			return c.Conn.Read(b)

		case modePoisoned:
			if c.hd < c.hr {
				return c.deliver(b), nil
			}
			if c.poison != "" {
				n := copy(b, c.poison)
				c.poison = c.poison[n:]
				return n, nil
			}
			c.putHeld()
			return 0, io.EOF

		case modeUpgrade:
			// Until the server says whether it took the connection over,
			// nothing after the upgrade request is delivered: it may be
			// another protocol. net/http's background read waits here
			// until the server aborts it (with a read deadline) or the
			// client goes away.
			if c.hd < c.hr {
				return c.deliver(b), nil
			}
			if err := c.readHeld(); err != nil {
				return 0, err
			}
			c.takeSignals()

		case modeHTTP:
			switch {
			case c.hd < c.hr:
				return c.deliver(b), nil
			case c.hs < c.heldLen():
				c.scanHeld()
				continue
			}
			if c.putHeld(); c.held != nil {
				// Held bytes wait for a verdict that needs more.
				if err := c.readHeld(); err != nil {
					return 0, err
				}
				continue
			}
			// Nothing is held: read into b and judge the bytes in place.
			n, err := c.Conn.Read(b)
			if n == 0 {
				return 0, err
			}
			k, v := c.p.scan(b[:n])
			if v == more {
				return n, err
			}
			if d := c.divert(b[:n], k, v); d > 0 {
				return d, nil
			}
		}
	}
}

// takeSignals applies what the ConnState hook reported.
func (c *Conn) takeSignals() {
	if c.hijacked.Load() {
		c.mode = modeOpaque
		return
	}
	c.served += int(c.idles.Swap(0))
	if c.mode == modeUpgrade && c.served >= c.upgradeAt {
		// The server answered the upgrade request and reads on: the
		// bytes after it are HTTP again.
		c.mode = modeHTTP
	}
}

// divert handles a verdict other than more met at offset k of b, read
// straight from the connection: the bytes that may be delivered stay in b
// (their count is returned), the rest moves to the held buffer.
func (c *Conn) divert(b []byte, k int, v verdict) int {
	d := k
	if v == hold {
		d = k - 1 // the header block's final LF is held
	}
	if v != reject {
		c.getHeld()
		*c.held = append((*c.held)[:0], b[d:]...)
	}
	c.hd, c.hr, c.hs = 0, 0, 0
	c.apply(v, k-d)
	return d
}

// scanHeld scans the held bytes from hs and applies the verdict.
func (c *Conn) scanHeld() {
	k, v := c.p.scan((*c.held)[c.hs:])
	c.apply(v, c.hs+k)
}

// apply acts on verdict v, met at held offset at.
func (c *Conn) apply(v verdict, at int) {
	switch v {
	case more:
		c.hs = at
		if !c.holding {
			c.hr = at
		}
	case hold:
		// The header block's final LF is the byte before at.
		c.hs, c.hr, c.holding, c.holdStart = at, at-1, true, at-1
	case release:
		c.hs, c.hr, c.holding = at, at, false
	case upgrade:
		c.hs, c.hr = at, at
		c.upgradeAt = c.p.messages
		if c.served < c.upgradeAt {
			c.mode = modeUpgrade
		}
	case reject:
		end := at
		if c.holding {
			end = c.holdStart
		}
		if c.held != nil {
			*c.held = (*c.held)[:min(end, c.heldLen())]
		}
		c.hr, c.hs, c.holding = end, end, false
		c.mode, c.poison = modePoisoned, poison
		c.refused.Store(true)
	}
}

// deliver copies held[hd:hr] into b.
func (c *Conn) deliver(b []byte) int {
	n := copy(b, (*c.held)[c.hd:c.hr])
	c.hd += n
	return n
}

func (c *Conn) heldLen() int {
	if c.held == nil {
		return 0
	}
	return len(*c.held)
}

func (c *Conn) getHeld() {
	if c.held == nil {
		c.held = heldBufs.Get().(*[]byte)
		*c.held = (*c.held)[:0]
	}
}

// putHeld returns the held buffer once everything in it was delivered.
func (c *Conn) putHeld() {
	if c.held == nil || c.hd < len(*c.held) {
		return
	}
	if cap(*c.held) == heldSize {
		heldBufs.Put(c.held)
	}
	c.held = nil
	c.hd, c.hr, c.hs = 0, 0, 0
}

// readHeld reads more of the connection into the held buffer.
func (c *Conn) readHeld() error {
	c.getHeld()
	h := *c.held
	if len(h) == cap(h) && c.hd > 0 {
		// Drop what was delivered.
		n := copy(h, h[c.hd:])
		c.hr, c.hs, c.holdStart = c.hr-c.hd, c.hs-c.hd, c.holdStart-c.hd
		c.hd = 0
		h = h[:n]
	}
	if len(h) == cap(h) {
		if len(h) >= maxHeld {
			return errHeldOverflow
		}
		grown := make([]byte, len(h), min(2*cap(h), maxHeld))
		copy(grown, h)
		h = grown
	}
	n, err := c.Conn.Read(h[len(h):cap(h)])
	*c.held = h[:len(h)+n]
	if n > 0 {
		return nil
	}
	if err == nil {
		err = io.ErrNoProgress
	}
	return err
}

// state is the ConnState hook's entry.
func (c *Conn) state(s http.ConnState) {
	switch s {
	case http.StateIdle:
		c.idles.Add(1)
	case http.StateHijacked:
		c.hijacked.Store(true)
	}
}

// CloseWrite shuts the sending side down when the wrapped connection can.
func (c *Conn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// Close closes the connection. After a refusal it first lets the refusal
// reach the client: it shuts its sending side and reads what the client
// still sends for a moment, so that closing with unread bytes does not
// reset the connection before the client has read the answer.
func (c *Conn) Close() error {
	if c.refused.Load() {
		c.closeOne.Do(func() {
			_ = c.CloseWrite()
			_ = c.Conn.SetReadDeadline(time.Now().Add(lingerTime))
			_, _ = io.CopyN(io.Discard, c.Conn, maxLinger)
		})
	}
	return c.Conn.Close()
}

// A refused connection's close waits at most lingerTime, or until
// maxLinger bytes were read and dropped.
const (
	lingerTime = 250 * time.Millisecond
	maxLinger  = 256 << 10
)
