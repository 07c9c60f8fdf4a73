package main

import (
	"bufio"
	"errors"
	"io"
	"net"

	"github.com/gobwas/ws"
)

// Frame-level WebSocket helpers shared by the upstream and the clients.
// They work on raw frames (gobwas/ws headers) so that the measuring parties
// cost as little as possible and the same for every path measured.

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
