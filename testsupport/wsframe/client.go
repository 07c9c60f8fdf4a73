package wsframe

import (
	"bufio"
	"io"

	"github.com/gobwas/ws"

	"github.com/portcullis-proxy/portcullis/pipeline"
)

// The measuring clients' side: frames compiled once and sent as they are,
// and a reader that skips what comes back without allocating.

// Masked compiles a final client frame of op carrying a copy of payload,
// masked as a client must send it (with a fixed key: the bytes on the wire
// are the same in every run, and the frame can be written again and again).
func Masked(op ws.OpCode, payload []byte) []byte {
	p := append([]byte(nil), payload...)
	return ws.MustCompileFrame(ws.MaskFrameInPlaceWith(ws.NewFrame(op, true, p), [4]byte{0x1f, 0x2e, 0x3d, 0x4c}))
}

// ErrTooLong is what [Reader.Read] returns for a frame whose payload is
// over 1 MiB: it reads answers (a Close, an "ok"), not data.
const ErrTooLong = pipeline.Sentinel("frame too long for a control answer")

// Reader reads frames on a client connection through a buffer of its own.
type Reader struct {
	br  *bufio.Reader
	scr [ws.MaxHeaderSize]byte
}

// NewReader reads conn through a buffer of size bytes. Nothing else may
// read conn afterwards: the buffer may hold bytes past the frame read last.
func NewReader(conn io.Reader, size int) *Reader {
	return &Reader{br: bufio.NewReaderSize(conn, size)}
}

// Skip reads one frame and discards its payload.
func (r *Reader) Skip() (ws.Header, error) {
	h, err := ws.ReadHeaderBuffer(r.br, r.scr[:])
	if err != nil {
		return h, err
	}
	_, err = r.br.Discard(int(h.Length))
	return h, err
}

// Read reads one frame with its payload, unmasked; a payload over 1 MiB
// is not read ([ErrTooLong]).
func (r *Reader) Read() (ws.Header, []byte, error) {
	h, err := ws.ReadHeaderBuffer(r.br, r.scr[:])
	if err != nil {
		return h, nil, err
	}
	if h.Length > 1<<20 {
		return h, nil, ErrTooLong
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
