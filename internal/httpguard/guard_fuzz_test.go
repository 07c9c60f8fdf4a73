package httpguard

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"testing"
)

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

// netHTTPEnds parses data as net/http's server does (http.ReadRequest,
// then the whole body) and returns the offset where each request it reads
// completely ends, up to the first it cannot read.
func netHTTPEnds(data []byte) []int {
	cr := &countingReader{r: bytes.NewReader(data)}
	br := bufio.NewReader(cr)
	var ends []int
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			return ends
		}
		if _, err := io.Copy(io.Discard, req.Body); err != nil {
			return ends
		}
		ends = append(ends, cr.n-br.Buffered())
		// net/http's server skips a few empty lines after a POST; the
		// guard skips them too.
		for {
			b, err := br.Peek(1)
			if err != nil || (b[0] != '\r' && b[0] != '\n') {
				break
			}
			br.Discard(1)
		}
	}
}

// guardEnds runs the parser over data in slices of step bytes and returns
// where it ended each message and where it stopped judging: at a refusal
// (refused) or after a message that may switch protocols.
func guardEnds(data []byte, step int) (ends []int, stop int, refused bool) {
	var p parser
	base, holdStart := 0, -1
	p.onEnd = func(off int) { ends = append(ends, base+off) }
	for pos := 0; pos < len(data); {
		end := min(pos+step, len(data))
		base = pos
		k, v := p.scan(data[pos:end])
		switch v {
		case reject:
			if holdStart >= 0 {
				// The header block's end was held: the refusal starts
				// there.
				return ends, holdStart, true
			}
			return ends, pos + k, true
		case upgrade:
			return ends, pos + k, false
		case hold:
			holdStart = pos + k - 1
		case release:
			holdStart = -1
		}
		pos += k
	}
	if holdStart >= 0 {
		// The stream ended before the first chunk-size line did.
		return ends, holdStart, false
	}
	return ends, len(data), false
}

// FuzzGuard checks the guard against net/http on arbitrary byte streams:
//
//   - the parser agrees with net/http on where every request net/http can
//     read ends (a disagreement is exactly what smuggling exploits), and
//     does not depend on how the bytes are sliced;
//   - a Conn delivers the stream unchanged up to where the parser stopped,
//     then the poison if it refused, whatever the sizes of the reads.
func FuzzGuard(f *testing.F) {
	seeds := []string{
		get + get,
		"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello" + get,
		chunkedRq + "5\r\nhello\r\n0\r\nX: y\r\n\r\n" + get,
		"POST / HTTP/1.1\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
		"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
		"GET / HTTP/1.1\r\nX: a\r\n Transfer-Encoding: chunked\r\n\r\n",
		chunkedRq + "3\nabc\r\n0\r\n\r\n",
		"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n\x81\x80abcd",
		"POST / HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi\r\n\r\n" + get,
		"GET / HTTP/1.1\nHost: a\n\n",
		"CONNECT a:443 HTTP/1.1\r\n\r\n" + get,
	}
	for _, s := range seeds {
		f.Add([]byte(s), uint8(7))
	}
	f.Fuzz(func(t *testing.T, data []byte, step uint8) {
		ends, stop, refused := guardEnds(data, len(data)+1)
		sliced, sstop, srefused := guardEnds(data, int(step)%64+1)
		if len(sliced) != len(ends) || sstop != stop || srefused != refused {
			t.Fatalf("slicing by %d changes the verdict: ends %v/%v, stop %d/%d, refused %v/%v", int(step)%64+1, ends, sliced, stop, sstop, refused, srefused)
		}
		for i := range ends {
			if ends[i] != sliced[i] {
				t.Fatalf("slicing by %d moves message ends: %v / %v", int(step)%64+1, ends, sliced)
			}
		}
		std := netHTTPEnds(data[:stop])
		for i, e := range std {
			if i >= len(ends) || ends[i] != e {
				t.Fatalf("net/http ends requests at %v, the guard at %v (stopped at %d, refused %v)\n%q", std, ends, stop, refused, data)
			}
		}

		want := string(data[:stop])
		if refused {
			want += poison
		}
		got, c := guarded(t, string(data), int(step)%13+1, int(step)%7*600+1)
		if string(got) != want {
			t.Fatalf("delivered %q, want %q", got, want)
		}
		if c.Refused() != refused {
			t.Fatalf("Refused() = %v, want %v", c.Refused(), refused)
		}
	})
}
