package httpguard

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// sliceConn is a connection whose peer sent data, handed out by Read in
// pieces of at most step bytes; then EOF.
type sliceConn struct {
	data []byte
	step int
}

func (s *sliceConn) Read(b []byte) (int, error) {
	if len(s.data) == 0 {
		return 0, io.EOF
	}
	n := min(len(b), s.step, len(s.data))
	copy(b, s.data[:n])
	s.data = s.data[n:]
	return n, nil
}

func (s *sliceConn) Write(b []byte) (int, error)      { return len(b), nil }
func (s *sliceConn) Close() error                     { return nil }
func (s *sliceConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (s *sliceConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (s *sliceConn) SetDeadline(time.Time) error      { return nil }
func (s *sliceConn) SetReadDeadline(time.Time) error  { return nil }
func (s *sliceConn) SetWriteDeadline(time.Time) error { return nil }

// drain reads c as net/http would, with reads of size bufSize, until an
// error, and returns what was delivered.
func drain(t testing.TB, c *Conn, bufSize int) []byte {
	var out []byte
	buf := make([]byte, bufSize)
	for i := 0; ; i++ {
		n, err := c.Read(buf)
		out = append(out, buf[:n]...)
		if err != nil {
			if !errors.Is(err, io.EOF) {
				t.Fatalf("read: %v", err)
			}
			return out
		}
		if i > 1<<20 {
			t.Fatal("reads make no progress")
		}
	}
}

// guarded runs data through a Conn with the given read sizes.
func guarded(t testing.TB, data string, step, bufSize int) (delivered []byte, c *Conn) {
	c = NewConn(&sliceConn{data: []byte(data), step: step})
	return drain(t, c, bufSize), c
}

const (
	get       = "GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
	chunkedRq = "POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
)

// TestFraming: accepted streams pass unchanged with their message count;
// refused ones are cut where the framing goes wrong and end with the
// poison, whatever the sizes the bytes arrive and are read in.
func TestFraming(t *testing.T) {
	// A | in a refused input marks where the refusal starts; it is not
	// sent.
	cases := []struct {
		name     string
		in       string
		messages int // complete messages before the refusal, or in all
	}{
		{"GET", get, 1},
		{"pipelined", get + get + get, 3},
		{"bare LF header lines", "GET / HTTP/1.1\nHost: x\n\n" + get, 2},
		{"POST with a body", "POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello" + get, 2},
		{"body with CR LF inside", "POST / HTTP/1.1\r\ncontent-LENGTH:  4 \r\n\r\n\r\n\r\n" + get, 2},
		{"same Content-Length twice", "POST / HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nhi", 1},
		{"empty lines between", get + "\r\n\r\n" + get, 2},
		{"HTTP/1.0 with a body", "POST / HTTP/1.0\r\nContent-Length: 1\r\n\r\nx" + get, 2},
		{"chunked", chunkedRq + "5\r\nhello\r\n1a;name=\"v\"\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\n\r\n" + get, 2},
		{"chunked with trailers", chunkedRq + "3 \t\r\nabc\r\n0\r\nX-Sum: 1\r\nX-B: 2\r\n\r\n" + get, 2},
		{"chunked expecting 100-continue", "POST / HTTP/1.1\r\nExpect: 100-continue\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 1},
		{"value with a colon and tabs", "GET / HTTP/1.1\r\nX-A: a:b\t c\r\n\r\n", 1},
		{"long request target", "GET /" + strings.Repeat("a", 5000) + " HTTP/1.1\r\n\r\n" + get, 2},

		{"Content-Length and Transfer-Encoding", "POST / HTTP/1.1\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r|\n0\r\n\r\n", 0},
		{"Transfer-Encoding and Content-Length", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 0\r\n\r|\n0\r\n\r\n", 0},
		{"smuggled after a good one", get + "POST / HTTP/1.1\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n|\n0\r\n\r\n", 1},
		{"HTTP/1.0 with Transfer-Encoding", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r|\n0\r\n\r\n", 0},
		{"obs-fold", "GET / HTTP/1.1\r\nX-A: b\r\n| Transfer-Encoding: chunked\r\n\r\n", 0},
		{"bare CR in a value", "GET / HTTP/1.1\r\nX-A: b\r|c\r\n\r\n", 0},
		{"bare CR in the request line", "GET /\r| HTTP/1.1\r\n\r\n", 0},
		{"space before colon", "GET / HTTP/1.1\r\nTransfer-Encoding| : chunked\r\n\r\n", 0},
		{"line without colon", "GET / HTTP/1.1\r\nnocolon|\r\n\r\n", 0},
		{"Content-Length with a sign", "POST / HTTP/1.1\r\nContent-Length: |+4\r\n\r\nabcd", 0},
		{"Content-Length list", "POST / HTTP/1.1\r\nContent-Length: 4|, 4\r\n\r\nabcd", 0},
		{"empty Content-Length", "POST / HTTP/1.1\r\nContent-Length: \r|\n\r\n", 0},
		{"two Content-Lengths", "POST / HTTP/1.1\r\nContent-Length: 4\r\nContent-Length: 5\r|\n\r\nabcd", 0},
		{"Content-Length too large", "POST / HTTP/1.1\r\nContent-Length: 922337203685477580|8\r\n\r\n", 0},
		{"bare LF ends the first chunk-size line", chunkedRq[:len(chunkedRq)-1] + "|\n3\nabc\r\n0\r\n\r\n", 0},
		{"bare LF ends a later chunk-size line", chunkedRq + "3\r\nabc\r\n0|\n\r\n", 0},
		{"bare LF ends chunk data", chunkedRq + "3\r\nabc|\n0\r\n\r\n", 0},
		{"chunk data too long", chunkedRq + "3\r\nabc|d\r\n0\r\n\r\n", 0},
		{"space between size and extension", chunkedRq[:len(chunkedRq)-1] + "|\n3 ;x\r\nabc\r\n0\r\n\r\n", 0},
		{"empty chunk size", chunkedRq[:len(chunkedRq)-1] + "|\n\r\n", 0},
		{"chunk size not hex", chunkedRq + "1\r\na\r\n0|x3\r\nabc\r\n0\r\n\r\n", 0},
		{"chunk size over 64 bits", chunkedRq + "1\r\na\r\n1000000000000000|0\r\n", 0},
		{"chunk-size line too long", chunkedRq + "1\r\na\r\n1;" + strings.Repeat("x", maxChunkLine-5) + "|x\r\n", 0},
		{"CR inside a chunk extension", chunkedRq + "1\r\na\r\n1;a\r|b\r\nc\r\n0\r\n\r\n", 0},
		{"bare LF in trailers", chunkedRq + "1\r\na\r\n0\r\nX: y|\n\r\n", 0},
		{"obs-fold in trailers", chunkedRq + "1\r\na\r\n0\r\nX: y\r\n| z\r\n\r\n", 0},
		{"bare LF ends trailers", chunkedRq + "1\r\na\r\n0\r\n|\n", 0},
		{"second request refused", get + "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n|\n", 1},
	}
	for _, tc := range cases {
		in, want := tc.in, tc.in
		refused := strings.Contains(tc.in, "|")
		if refused {
			i := strings.IndexByte(tc.in, '|')
			in = tc.in[:i] + tc.in[i+1:]
			want = tc.in[:i] + poison
		}
		for _, step := range []int{1, 2, 3, 7, 64, 4096} {
			for _, buf := range []int{1, 5, 4096} {
				got, c := guarded(t, in, step, buf)
				if string(got) != want {
					t.Errorf("%s (arriving by %d, read by %d):\n got %q\nwant %q", tc.name, step, buf, got, want)
					continue
				}
				if c.Refused() != refused {
					t.Errorf("%s: Refused() = %v", tc.name, c.Refused())
				}
				if c.p.messages != tc.messages {
					t.Errorf("%s (by %d): %d messages, want %d", tc.name, step, c.p.messages, tc.messages)
				}
			}
		}
	}
}

// TestUpgradeHoldsUntilTheServerDecides: bytes after an upgrade request are
// delivered untouched once the connection is hijacked, and judged as HTTP
// when the server answered and reads on.
func TestUpgradeHoldsUntilTheServerDecides(t *testing.T) {
	upgradeRq := "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
	frames := "\x81\x85\x00\x00\x00\x00hello\x88\x80\x00\x00\x00\x00 Transfer-Encoding : x\r\n\r\n"
	buf := make([]byte, 4096)

	// Hijacked: the frames pass verbatim, although as HTTP they would be
	// refused.
	c := NewConn(&sliceConn{data: []byte(upgradeRq + frames), step: 4096})
	n, err := c.Read(buf)
	if err != nil || string(buf[:n]) != upgradeRq {
		t.Fatalf("first read: %q %v, want the upgrade request alone", buf[:n], err)
	}
	// net/http's background read: the frames are held, the read ends at
	// the peer's EOF here (a read deadline in a server).
	if n, err := c.Read(buf[:1]); n != 0 || err == nil {
		t.Fatalf("background read delivered %q, %v", buf[:n], err)
	}
	c.state(http.StateHijacked)
	if _, ok := c.Passthrough(); ok {
		t.Error("Passthrough with held bytes not yet read")
	}
	if got := drain(t, c, 3); string(got) != frames {
		t.Errorf("after hijack: %q, want the frames untouched", got)
	}
	if inner, ok := c.Passthrough(); !ok || inner != c.Conn {
		t.Error("no Passthrough once the held bytes were read")
	}

	// Answered without a takeover: the next request is judged.
	smuggled := "POST / HTTP/1.1\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
	c = NewConn(&sliceConn{data: []byte(upgradeRq + get + smuggled), step: 4096})
	n, _ = c.Read(buf)
	if string(buf[:n]) != upgradeRq {
		t.Fatalf("first read: %q", buf[:n])
	}
	c.state(http.StateIdle)
	want := get + smuggled[:strings.Index(smuggled, "\r\n\r\n")+3] + poison
	if got := drain(t, c, 4096); string(got) != want {
		t.Errorf("after the answer: %q, want %q", got, want)
	}

	// A request pipelined before the upgrade request: its answer does
	// not release the bytes after the upgrade request.
	c = NewConn(&sliceConn{data: []byte(get + upgradeRq + frames), step: 4096})
	n, _ = c.Read(buf)
	if string(buf[:n]) != get+upgradeRq {
		t.Fatalf("first read: %q", buf[:n])
	}
	c.state(http.StateIdle) // the GET was answered
	if n, err := c.Read(buf[:1]); n != 0 || err == nil {
		t.Fatalf("background read after the GET's answer delivered %q, %v", buf[:n], err)
	}
	c.state(http.StateHijacked)
	if got := drain(t, c, 4096); string(got) != frames {
		t.Errorf("after hijack: %q", got)
	}
}

// TestHeldBytesAreBounded: a client that keeps sending after an upgrade
// request without an answer is cut off at maxHeld.
func TestHeldBytesAreBounded(t *testing.T) {
	upgradeRq := "GET /ws HTTP/1.1\r\nUpgrade: websocket\r\n\r\n"
	c := NewConn(&sliceConn{data: append([]byte(upgradeRq), bytes.Repeat([]byte("x"), 2*maxHeld)...), step: 1000})
	buf := make([]byte, 4096)
	c.Read(buf)
	_, err := c.Read(buf[:1])
	if !errors.Is(err, errHeldOverflow) {
		t.Errorf("background read: %v, want %v", err, errHeldOverflow)
	}
	if c.heldLen() > maxHeld {
		t.Errorf("%d bytes held, more than %d", c.heldLen(), maxHeld)
	}
}

// TestJudgingAllocatesNothing: requests that pass (headers, bodies,
// chunked framing) cost the guard no allocation.
func TestJudgingAllocatesNothing(t *testing.T) {
	data := []byte(get + "POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello" + chunkedRq + "5\r\nhello\r\n0\r\n\r\n")
	src := &sliceConn{step: 4096}
	c := NewConn(src)
	buf := make([]byte, 4096)
	allocs := testing.AllocsPerRun(100, func() {
		src.data = data
		for {
			if _, err := c.Read(buf); err != nil {
				break
			}
		}
	})
	if allocs != 0 {
		t.Errorf("%.1f allocations per stream, want none", allocs)
	}
}
