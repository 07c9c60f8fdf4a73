package httpguard

import "bytes"

// verdict is what the parser tells the connection at the point where scan
// stopped.
type verdict uint8

const (
	// more: every byte given was scanned and may be delivered (subject to
	// a hold in progress).
	more verdict = iota
	// reject: the byte at the returned offset makes the framing ambiguous;
	// nothing from there on may reach the server (see holdAt).
	reject
	// hold: the request's header block ends one byte before the returned
	// offset (its final LF) and its body is chunked: that LF and what
	// follows are held back until the first chunk-size line is judged.
	hold
	// release: the first chunk-size line ended well at the returned offset;
	// everything held so far may be delivered.
	release
	// upgrade: a request that may switch protocols (Upgrade header,
	// CONNECT) ends at the returned offset. Bytes after it are not HTTP
	// until the server says so.
	upgrade
)

type state uint8

const (
	sReqStart     state = iota // between messages; CR and LF are skipped
	sReqLine                   // in the request line
	sLineStart                 // at the start of a header line
	sName                      // in a field name
	sCLValue                   // in a Content-Length value
	sValue                     // in another field value
	sBody                      // in a Content-Length body
	sChunkSize                 // in the hex digits of a chunk-size line
	sChunkWS                   // in whitespace after the digits
	sChunkExt                  // in a chunk extension
	sChunkData                 // in chunk data
	sChunkCR                   // CR expected after chunk data
	sChunkLF                   // LF expected after chunk data
	sTrailerStart              // at the start of a trailer line
	sTrailer                   // in a trailer line
	sTrailerEnd                // LF expected: the message ends
)

// maxChunkLine is net/http's limit on a chunk-size line.
const maxChunkLine = 4096

// field is a header field the parser cares about.
type field uint8

const (
	fOther field = iota
	fContentLength
	fTransferEncoding
	fUpgrade
	fExpect
)

var fieldNames = [...]string{
	fContentLength:    "content-length",
	fTransferEncoding: "transfer-encoding",
	fUpgrade:          "upgrade",
	fExpect:           "expect",
}

// parser follows the framing of a stream of HTTP/1.x requests. It reads
// every header block byte by byte (field values it does not need with
// bytes.IndexByte), skips bodies by their length and walks chunked bodies'
// framing lines. It allocates nothing.
//
// It judges only what decides where a message ends, and it agrees with
// net/http wherever net/http accepts a message: a body is chunked when a
// Transfer-Encoding field is present on an HTTP/1.1 request (net/http
// accepts nothing but "chunked" there), else Content-Length bytes long,
// else empty. Everything net/http would read differently from a careful
// front end is a rejection.
type parser struct {
	st state
	cr bool // the previous byte was a CR: the next must be LF

	// Per message.
	spaces   int // spaces seen in the request line
	method   [8]byte
	mlen     int
	proto    [9]byte
	plen     int
	name     [17]byte // lower-cased start of the current field name
	nlen     int
	hasCL    bool
	hasTE    bool
	upgrade  bool
	expect   bool
	http10   bool
	cl       uint64 // Content-Length
	val      uint64 // value being parsed (Content-Length, chunk size)
	digits   int
	trailing bool // whitespace after the Content-Length digits
	holding  bool // the first chunk-size line decides a hold
	lineLen  int  // length of the current chunk-size line
	remain   uint64

	// messages counts complete messages (tests compare boundaries).
	messages int
	// onEnd, when set, is told the offset (within the slice being
	// scanned) where each message ends.
	onEnd func(off int)
}

func (p *parser) resetMessage() {
	*p = parser{messages: p.messages, onEnd: p.onEnd}
}

// scan reads b from the start and stops at the end of b or at the first
// event that changes what may be delivered. It returns the offset where it
// stopped (bytes before it were scanned) and the verdict there.
func (p *parser) scan(b []byte) (int, verdict) {
	i := 0
	for i < len(b) {
		c := b[i]
		if p.cr {
			// "A recipient MAY recognize a single LF as a line terminator
			// and ignore any preceding CR" only where CR LF is the
			// terminator: a CR anywhere else is a bare CR (RFC 9112 §2.2).
			if c != '\n' {
				return i, reject
			}
		}
		switch p.st {
		case sReqStart:
			// net/http skips empty lines a client sends after a POST body.
			if c == '\r' || c == '\n' {
				i++
				continue
			}
			p.st = sReqLine
			continue

		case sReqLine:
			switch c {
			case '\n':
				p.cr = false
				p.endRequestLine()
				p.st = sLineStart
			case '\r':
				p.cr = true
			case ' ':
				p.spaces++
			default:
				if p.spaces == 0 && p.mlen < len(p.method) {
					p.method[p.mlen] = c
					p.mlen++
				} else if p.spaces == 2 {
					if p.plen < len(p.proto) {
						p.proto[p.plen] = c
					}
					p.plen++
				} else if p.spaces == 1 {
					// Skip the request target quickly.
					j := bytes.IndexAny(b[i:], " \r\n")
					if j < 0 {
						return len(b), more
					}
					i += j
					continue
				}
			}
			i++

		case sLineStart:
			switch c {
			case '\r':
				p.cr = true
				i++
			case '\n':
				p.cr = false
				i++
				switch v := p.endHeaders(); {
				case v == reject:
					return i - 1, reject
				case v == hold:
					return i, hold
				case p.st == sReqStart:
					// No body: the message ended.
					if p.finish(i) {
						return i, upgrade
					}
				}
			case ' ', '\t':
				// obs-fold. net/http joins it to the previous field; a
				// front end may read it as a field of its own. RFC 9112
				// §5.2 lets a server reject it.
				return i, reject
			default:
				p.st, p.nlen = sName, 0
			}

		case sName:
			switch c {
			case ':':
				p.st = sValue
				switch p.fieldKind() {
				case fContentLength:
					p.st, p.val, p.digits, p.trailing = sCLValue, 0, 0, false
				case fTransferEncoding:
					p.hasTE = true
				case fUpgrade:
					p.upgrade = true
				case fExpect:
					p.expect = true
				}
			case ' ', '\t', '\r', '\n':
				// "No whitespace is allowed between the field name and
				// colon" (RFC 9112 §5.1); a line without a colon is no
				// field at all.
				return i, reject
			default:
				if p.nlen < len(p.name) {
					if 'A' <= c && c <= 'Z' {
						c += 'a' - 'A'
					}
					p.name[p.nlen] = c
				}
				p.nlen++
			}
			i++

		case sCLValue:
			switch {
			case c == '\n':
				p.cr = false
				if p.digits == 0 || (p.hasCL && p.val != p.cl) {
					return i, reject
				}
				p.hasCL, p.cl = true, p.val
				p.st = sLineStart
			case c == '\r':
				p.cr = true
			case c == ' ' || c == '\t':
				p.trailing = p.digits > 0
			case '0' <= c && c <= '9' && !p.trailing:
				// net/http's limit: ParseUint(v, 10, 63).
				if p.val > (1<<63-1-uint64(c-'0'))/10 {
					return i, reject
				}
				p.val = p.val*10 + uint64(c-'0')
				p.digits++
			default:
				// A sign, a list, anything but one decimal number.
				return i, reject
			}
			i++

		case sValue, sTrailer:
			// The rest of the line matters only for where it ends, and for
			// a CR anywhere but right before that end.
			j := bytes.IndexByte(b[i:], '\n')
			end := len(b)
			if j >= 0 {
				end = i + j
			}
			seg := b[i:end]
			k := bytes.IndexByte(seg, '\r')
			if k >= 0 && k != len(seg)-1 {
				// A bare CR; refused from the byte after it, as when the
				// CR ends a slice.
				return i + k + 1, reject
			}
			if j < 0 {
				// The line goes on in the next slice; a CR that ends this
				// one must be followed by LF there.
				p.cr = k >= 0
				return len(b), more
			}
			crlf := k >= 0 || (len(seg) == 0 && p.cr)
			if p.st == sTrailer && !crlf {
				return end, reject // trailer lines end with CR LF
			}
			i, p.cr = end+1, false
			if p.st == sTrailer {
				p.st = sTrailerStart
			} else {
				p.st = sLineStart
			}

		case sBody:
			n := min(p.remain, uint64(len(b)-i))
			p.remain -= n
			i += int(n)
			if p.remain == 0 {
				if p.finish(i) {
					return i, upgrade
				}
			}

		case sChunkSize, sChunkWS, sChunkExt:
			switch c {
			case '\r':
				p.cr = true
				i++
				continue
			case '\n':
				// A bare LF ends no chunk-size line: net/http refuses it,
				// a front end may not (RFC 9112 §7.1, erratum 7633).
				if !p.cr || p.digits == 0 {
					return i, reject
				}
				p.cr = false
				i++
				p.lineLen = 0
				if p.val == 0 {
					p.st = sTrailerStart
				} else {
					p.st, p.remain = sChunkData, p.val
				}
				if p.holding {
					p.holding = false
					return i, release
				}
				continue
			}
			if p.lineLen++; p.lineLen >= maxChunkLine-2 {
				return i, reject // net/http's line limit
			}
			switch p.st {
			case sChunkSize:
				switch {
				case c == ';':
					if p.digits == 0 {
						return i, reject
					}
					p.st = sChunkExt
				case c == ' ' || c == '\t':
					if p.digits == 0 {
						return i, reject
					}
					p.st = sChunkWS
				default:
					d, ok := unhex(c)
					if !ok || p.digits == 16 {
						return i, reject
					}
					p.val = p.val<<4 | uint64(d)
					p.digits++
				}
			case sChunkWS:
				// net/http trims trailing whitespace before cutting the
				// extension off, so "5 ;x" is not a size it can read.
				if c != ' ' && c != '\t' {
					return i, reject
				}
			}
			i++

		case sChunkData:
			n := min(p.remain, uint64(len(b)-i))
			p.remain -= n
			i += int(n)
			if p.remain == 0 {
				p.st = sChunkCR
			}

		case sChunkCR:
			if c != '\r' {
				return i, reject
			}
			p.st = sChunkLF
			i++

		case sChunkLF:
			if c != '\n' {
				return i, reject
			}
			p.st, p.val, p.digits, p.lineLen = sChunkSize, 0, 0, 0
			i++

		case sTrailerStart:
			switch c {
			case '\r':
				p.st = sTrailerEnd
				i++
			case '\n', ' ', '\t':
				// A bare LF, or obs-fold, in the trailer section.
				return i, reject
			default:
				p.st = sTrailer
			}

		case sTrailerEnd:
			if c != '\n' {
				return i, reject
			}
			i++
			if p.finish(i) {
				return i, upgrade
			}
		}
	}
	return len(b), more
}

// finish is called when a message ends just before offset off: it readies
// the parser for the next one and reports whether the message ended may
// switch protocols.
func (p *parser) finish(off int) (upgrade bool) {
	upgrade = p.upgrade
	p.resetMessage()
	p.messages++
	if p.onEnd != nil {
		p.onEnd(off)
	}
	return upgrade
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

func (p *parser) endRequestLine() {
	// net/http reads the version as everything after the second space and
	// ignores Transfer-Encoding on HTTP/1.0 (and older) requests, reading
	// such a body as Content-Length bytes, or none.
	proto := p.proto[:min(p.plen, len(p.proto))]
	p.http10 = p.plen == 8 && (string(proto) == "HTTP/1.0" || string(proto[:7]) == "HTTP/0.")
	if p.mlen == 7 && string(p.method[:7]) == "CONNECT" {
		p.upgrade = true
	}
}

func (p *parser) fieldKind() field {
	if p.nlen > len(p.name) {
		return fOther
	}
	n := p.name[:p.nlen]
	for f, name := range fieldNames {
		if name != "" && string(n) == name {
			return field(f)
		}
	}
	return fOther
}

// endHeaders judges a header block that just ended and sets up its body.
// reject refers to the block's final LF; hold means the LF and what follows
// are held until the first chunk-size line is judged.
func (p *parser) endHeaders() verdict {
	switch {
	case p.hasTE && p.hasCL:
		// "ought to be handled as an error" (RFC 9112 §6.1): net/http
		// lets Transfer-Encoding win, a front end may not.
		return reject
	case p.hasTE && p.http10:
		// "MUST treat the message as if the framing is faulty" (RFC 9112
		// §6.1); net/http ignores the coding instead.
		return reject
	case p.hasTE:
		p.st, p.val, p.digits, p.lineLen = sChunkSize, 0, 0, 0
		if !p.expect {
			// The client sends its body at once: hold the header block's
			// end until the first chunk-size line is judged, so that a
			// bad one is refused before the request is handled at all. A
			// client that expects 100-continue waits for the server, so
			// holding would stall it.
			p.holding = true
			return hold
		}
	case p.hasCL && p.cl > 0:
		p.st, p.remain = sBody, p.cl
	default:
		p.st = sReqStart
	}
	return more
}
