package tunnel

import (
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/portcullis-proxy/portcullis/pipeline"
)

// countingSink is an upstream connection handler that reads everything
// and notes how much arrived and when it stopped.
type countingSink struct {
	mu    sync.Mutex
	n     int64
	last  time.Time // last byte received
	ended time.Time // read error (the proxy closed the connection)
	done  chan struct{}
}

func newCountingSink() *countingSink { return &countingSink{done: make(chan struct{})} }

func (s *countingSink) serve(conn net.Conn) {
	defer close(s.done)
	buf := make([]byte, 64<<10)
	for {
		_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
		n, err := conn.Read(buf)
		s.mu.Lock()
		if n > 0 {
			s.n += int64(n)
			s.last = time.Now()
		}
		if err != nil {
			s.ended = time.Now()
		}
		s.mu.Unlock()
		if err != nil {
			return
		}
	}
}

func (s *countingSink) state() (int64, time.Time, time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n, s.last, s.ended
}

// slowUpload writes one masked binary frame of size bytes in pieces of
// piece bytes every gap, the way a browser uploads a large message over a
// slow link; it returns when the frame is written or the connection
// fails, with the time it finished.
func slowUpload(conn net.Conn, size, piece int, gap time.Duration) (finished time.Time, err error) {
	return uploadFrame(conn, size, piece, gap, nil)
}

// uploadFrame is slowUpload that stops waiting between pieces once hurry
// is closed.
func uploadFrame(conn net.Conn, size, piece int, gap time.Duration, hurry <-chan struct{}) (finished time.Time, err error) {
	var mask [4]byte
	copy(mask[:], "k3y!")
	if err := ws.WriteHeader(conn, ws.Header{Fin: true, OpCode: ws.OpBinary, Masked: true, Mask: mask, Length: int64(size)}); err != nil {
		return time.Now(), err
	}
	chunk := make([]byte, piece)
	for sent := 0; sent < size; sent += piece {
		n := min(piece, size-sent)
		p := chunk[:n]
		for i := range p {
			p[i] = byte(sent + i)
		}
		ws.Cipher(p, mask, sent)
		_ = conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
		if _, err := conn.Write(p); err != nil {
			return time.Now(), err
		}
		select {
		case <-hurry:
		case <-time.After(gap):
		}
	}
	return time.Now(), nil
}

// closed is the Close frame a client received and when.
type closed struct {
	at     time.Time
	code   ws.StatusCode
	reason string
}

// awaitClose reads the client's side in the background until a Close
// frame (or the end of the connection) and reports it, without answering.
func awaitClose(c *client) <-chan closed {
	got := make(chan closed, 1)
	go func() {
		_ = c.conn.SetReadDeadline(time.Now().Add(30 * time.Second))
		for {
			f, err := readFrameFrom(c.rd)
			if err != nil {
				got <- closed{at: time.Now()}
				return
			}
			if f.h.OpCode == ws.OpClose {
				code, reason := ws.ParseCloseFrameData(f.payload)
				got <- closed{time.Now(), code, reason}
				return
			}
		}
	}()
	return got
}

// sinkHarness returns an upstream that counts what it receives (sink) and
// a client tunnelled to it through a harness whose front server front
// starts (nil: plain TCP), under the policy that policy sets.
func sinkHarness(t *testing.T, relay Relay, front func(http.Handler) *httptest.Server, policy func(*pipeline.WebSocketPolicy)) (*countingSink, *client) {
	up := newUpstream(t)
	sink := newCountingSink()
	up.onConn = sink.serve
	h := newHarnessWith(t, relay, up.url(), front, nil)
	h.configure(policy)
	return sink, h.dial("/upload", dialOpts{})
}

// TestTunnelSplicedUploadIsActivity: a frame large enough to be spliced
// (4 MiB, over DefaultSpliceMin) uploaded steadily for ~3 s keeps a tunnel
// with a 600 ms idle timeout open; the upstream receives all of it; the
// idle timeout still closes the tunnel once the upload is over. Before,
// splicing recorded no activity and the active upload got 1008 idle
// timeout.
func TestTunnelSplicedUploadIsActivity(t *testing.T) { EachRelay(t, testTunnelSplicedUploadIsActivity) }

func testTunnelSplicedUploadIsActivity(t *testing.T, relay Relay) {
	const size = 4 << 20
	sink, c := sinkHarness(t, relay, nil, func(p *pipeline.WebSocketPolicy) {
		p.IdleTimeout, p.CloseGrace = 600*time.Millisecond, 200*time.Millisecond
	})
	// The client's side is read while it uploads: the Close must not
	// arrive before the upload is over.
	got := awaitClose(c)
	finished, err := slowUpload(c.conn, size, 64<<10, 50*time.Millisecond)
	if err != nil {
		t.Fatalf("upload cut off: %v", err)
	}
	cl := <-got
	if cl.code != ws.StatusPolicyViolation || cl.reason != "idle timeout" {
		t.Errorf("close %d %q, want 1008 idle timeout", cl.code, cl.reason)
	}
	if cl.at.Before(finished) {
		t.Errorf("the tunnel closed %v before the upload finished: an active upload counted as idle", finished.Sub(cl.at))
	}
	c.write(ws.OpClose, true, ws.NewCloseFrameBody(cl.code, ""))
	<-sink.done
	if n, _, _ := sink.state(); n < size {
		t.Errorf("the upstream received %d bytes, want the whole %d-byte frame", n, size)
	}
}

// TestTunnelSpliceStopsWhenCloseIsDecided: when the tunnel's lifetime
// ends in the middle of a large upload, the client gets its 1008 and the
// upstream stops receiving at once — not when the frame ends, nor after
// the 5 s Close-send limit — and its connection ends with the close grace
// (300 ms). Both relay paths: spliced (TCP on both sides) and copied (the
// client over TLS). The upload would last ~6 s; the bounds
// (2 s after the client's Close for the last byte, 3 s for the end) are
// generous for a loaded machine.
func TestTunnelSpliceStopsWhenCloseIsDecided(t *testing.T) {
	EachRelay(t, testTunnelSpliceStopsWhenCloseIsDecided)
}

func testTunnelSpliceStopsWhenCloseIsDecided(t *testing.T, relay Relay) {
	for path, front := range map[string]func(http.Handler) *httptest.Server{"spliced": nil, "copied": httptest.NewTLSServer} {
		t.Run(path, func(t *testing.T) { stopsWhenCloseIsDecided(t, relay, front) })
	}
}

func stopsWhenCloseIsDecided(t *testing.T, relay Relay, front func(http.Handler) *httptest.Server) {
	const size = 8 << 20
	sink, c := sinkHarness(t, relay, front, func(p *pipeline.WebSocketPolicy) {
		p.MaxLifetime = 500 * time.Millisecond
		p.IdleTimeout = 0
		p.CloseGrace = 300 * time.Millisecond // the client never answers
	})
	got := awaitClose(c)
	uploaded := make(chan time.Time, 1)
	go func() {
		at, _ := slowUpload(c.conn, size, 64<<10, 50*time.Millisecond)
		uploaded <- at
	}()
	cl := <-got
	closeAt := cl.at
	if cl.code != ws.StatusPolicyViolation || cl.reason != "max lifetime reached" {
		t.Errorf("close %d %q, want 1008 max lifetime reached", cl.code, cl.reason)
	}
	select {
	case <-sink.done:
	case <-time.After(ioWait):
		t.Fatal("the upstream's connection was not closed")
	}
	n, last, ended := sink.state()
	if last.Sub(closeAt) > 2*time.Second || ended.Sub(closeAt) > 3*time.Second {
		t.Errorf("the upstream went on receiving: last byte %v and end %v after the client's Close (%d of %d bytes)",
			last.Sub(closeAt), ended.Sub(closeAt), n, size)
	}
	if n >= size {
		t.Errorf("the upstream received the whole frame (%d bytes) though the tunnel closed during it", n)
	}
	c.conn.Close()
	<-uploaded
}

// TestTunnelSpliceCutStillClosesCleanly: a client told 1008 in the middle
// of a spliced upload finishes its frame (a client cannot interleave a
// Close into its own frame) and answers Close; the proxy reads and drops
// the rest of the frame, sees the Close and ends the client's connection
// normally. Nothing of the rest reaches the upstream.
func TestTunnelSpliceCutStillClosesCleanly(t *testing.T) {
	EachRelay(t, testTunnelSpliceCutStillClosesCleanly)
}

func testTunnelSpliceCutStillClosesCleanly(t *testing.T, relay Relay) {
	const size = 8 << 20
	sink, c := sinkHarness(t, relay, nil, func(p *pipeline.WebSocketPolicy) {
		p.MaxLifetime = 500 * time.Millisecond
		p.IdleTimeout = 0
		p.CloseGrace = 3 * time.Second // the client answers; no need to cut it off
	})
	got := awaitClose(c)
	hurry := make(chan struct{})
	uploaded := make(chan error, 1)
	go func() {
		_, err := uploadFrame(c.conn, size, 64<<10, 50*time.Millisecond, hurry)
		uploaded <- err
	}()
	cl := <-got
	if cl.code != ws.StatusPolicyViolation {
		t.Fatalf("close %d %q, want 1008", cl.code, cl.reason)
	}
	close(hurry)
	if err := <-uploaded; err != nil {
		t.Fatalf("finishing the frame: %v", err)
	}
	start := time.Now()
	c.write(ws.OpClose, true, ws.NewCloseFrameBody(cl.code, ""))
	c.expectEnd()
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("the client's connection ended %v after its Close, want promptly (not at the 3 s grace)", d)
	}
	if n, _, _ := sink.state(); n >= size {
		t.Errorf("the upstream received the whole frame (%d bytes)", n)
	}
}

// TestSpliceMinOption: Options.SpliceMin decides from which payload left
// in a frame the relay splices between two TCP connections: the default
// when zero, never when negative.
func TestSpliceMinOption(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	server := <-accepted
	if server == nil {
		t.Fatal("no connection accepted")
	}
	defer server.Close()
	tests := []struct {
		spliceMin, left int64
		want            bool
	}{
		{0, DefaultSpliceMin, true},
		{0, DefaultSpliceMin - 1, false},
		{1 << 10, 1 << 10, true},
		{1 << 10, 1<<10 - 1, false},
		{-1, 1 << 30, false},
	}
	for _, tc := range tests {
		tun := &tunnel{}
		tun.owner = New(Options{SpliceMin: tc.spliceMin})
		tun.client.setConn(server)
		tun.upstream.setConn(client)
		p := pump{t: tun, src: &tun.client, dst: &tun.upstream, left: tc.left}
		if got := p.spliceable(); got != tc.want {
			t.Errorf("SpliceMin %d, %d bytes left: spliceable = %v, want %v", tc.spliceMin, tc.left, got, tc.want)
		}
	}
}
