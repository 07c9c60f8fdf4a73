package main

import (
	"bufio"
	"encoding/binary"
	"errors"
	"io"
	"net"

	"github.com/gobwas/ws"
)

// Frame-level WebSocket helpers shared by the upstream and the clients.
// They work on raw frames (gobwas/ws headers) so that the measuring parties
// cost as little as possible and the same for every path measured.

// serveFrames is the upstream's loop on one WebSocket connection. In echo
// mode every frame comes back unmasked (a Close is echoed and ends the
// loop); in sink mode data frames are discarded and each text frame is
// answered with a text frame "ok", which the bulk client uses as its
// end marker.
func serveFrames(conn net.Conn, sink bool) {
	size := 4 << 10
	if sink {
		size = 64 << 10
	}
	br := bufio.NewReaderSize(conn, size)
	var (
		scr [ws.MaxHeaderSize]byte
		out []byte
	)
	for {
		hdr, err := ws.ReadHeaderBuffer(br, scr[:])
		if err != nil {
			return
		}
		n := int(hdr.Length)
		if sink && hdr.OpCode != ws.OpClose {
			if _, err := br.Discard(n); err != nil {
				return
			}
			if hdr.OpCode == ws.OpText {
				if _, err := conn.Write(okFrame); err != nil {
					return
				}
			}
			continue
		}
		if hdr.OpCode == ws.OpPong {
			if _, err := br.Discard(n); err != nil {
				return
			}
			continue
		}
		h := ws.Header{Fin: hdr.Fin, OpCode: hdr.OpCode, Rsv: hdr.Rsv, Length: hdr.Length}
		if h.OpCode == ws.OpPing {
			h.OpCode = ws.OpPong
		}
		hl := ws.HeaderSize(h)
		if cap(out) < hl+n {
			out = make([]byte, hl+n)
		}
		w := out[:hl+n]
		if _, err := io.ReadFull(br, w[hl:]); err != nil {
			return
		}
		if hdr.Masked {
			ws.Cipher(w[hl:], hdr.Mask, 0)
		}
		putHeader(w[:hl], h)
		if _, err := conn.Write(w); err != nil || hdr.OpCode == ws.OpClose {
			return
		}
	}
}

var okFrame = ws.MustCompileFrame(ws.NewTextFrame([]byte("ok")))

// putHeader writes the unmasked header h into b (len(b) == ws.HeaderSize(h)).
func putHeader(b []byte, h ws.Header) {
	b[0] = h.Rsv<<4 | byte(h.OpCode)
	if h.Fin {
		b[0] |= 0x80
	}
	switch {
	case h.Length < 126:
		b[1] = byte(h.Length)
	case h.Length <= 0xffff:
		b[1] = 126
		binary.BigEndian.PutUint16(b[2:], uint16(h.Length))
	default:
		b[1] = 127
		binary.BigEndian.PutUint64(b[2:], uint64(h.Length))
	}
}

// maskedFrame compiles a client frame (masked, as clients must send).
func maskedFrame(op ws.OpCode, payload []byte) []byte {
	p := append([]byte(nil), payload...)
	return ws.MustCompileFrame(ws.MaskFrameInPlaceWith(ws.NewFrame(op, true, p), [4]byte{0x1f, 0x2e, 0x3d, 0x4c}))
}

// frameReader reads frames on a client connection.
type frameReader struct {
	br  *bufio.Reader
	scr [ws.MaxHeaderSize]byte
}

func newFrameReader(conn net.Conn, size int) *frameReader {
	return &frameReader{br: bufio.NewReaderSize(conn, size)}
}

// skip reads one frame and discards its payload.
func (r *frameReader) skip() (ws.Header, error) {
	h, err := ws.ReadHeaderBuffer(r.br, r.scr[:])
	if err != nil {
		return h, err
	}
	_, err = r.br.Discard(int(h.Length))
	return h, err
}

// read reads one frame with its (unmasked) payload.
func (r *frameReader) read() (ws.Header, []byte, error) {
	h, err := ws.ReadHeaderBuffer(r.br, r.scr[:])
	if err != nil {
		return h, nil, err
	}
	if h.Length > 1<<20 {
		return h, nil, errors.New("frame too long for a control answer")
	}
	p := make([]byte, h.Length)
	if _, err := io.ReadFull(r.br, p); err != nil {
		return h, nil, err
	}
	if h.Masked {
		ws.Cipher(p, h.Mask, 0)
	}
	return h, p, nil
}
