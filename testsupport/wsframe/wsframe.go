// Package wsframe is the WebSocket upstream the benchmarks measure against
// (an echo and a sink) and their clients' frame helpers, all working on raw
// frames (gobwas/ws headers), so the measuring parties cost as little as
// possible and the same on every path.
// It is part of testsupport (the test harnesses): the proxy's tunnel
// benchmarks and the bench harness import it. Tests that want an upstream
// that answers messages use [github.com/portcullis-proxy/portcullis/testsupport/wsecho].
package wsframe

import (
	"bufio"
	"encoding/binary"
	"io"
	"net"

	"github.com/gobwas/ws"
)

// Serve is the upstream's loop on one WebSocket connection, reading
// through a buffer of bufSize bytes. In echo
// mode every frame comes back unmasked (a Close is echoed and ends the
// loop); in sink mode data frames are discarded and each text frame is
// answered with a text frame "ok", which the bulk client uses as its
// end marker.
func Serve(conn net.Conn, sink bool, bufSize int) {
	br := bufio.NewReaderSize(conn, bufSize)
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
