//go:build unix

package soak

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
)

// wsUpstream is a real WebSocket server on loopback (gobwas/ws) that
// echoes every message in order and records the Close codes it receives.
type wsUpstream struct {
	url    string
	open   atomic.Int64
	mu     sync.Mutex
	codes  map[ws.StatusCode]int
	ln     net.Listener
	active sync.WaitGroup
}

func newWSUpstream(t *testing.T) *wsUpstream {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := &wsUpstream{url: "http://" + l.Addr().String(), codes: map[ws.StatusCode]int{}, ln: l}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			u.active.Add(1)
			go u.serve(c)
		}
	}()
	t.Cleanup(func() { l.Close() })
	return u
}

func (u *wsUpstream) serve(c net.Conn) {
	defer u.active.Done()
	defer c.Close()
	if _, err := ws.Upgrade(c); err != nil {
		return
	}
	u.open.Add(1)
	defer u.open.Add(-1)
	br := bufio.NewReader(c)
	for {
		h, err := ws.ReadHeader(br)
		if err != nil {
			return
		}
		payload := make([]byte, h.Length)
		if _, err := io.ReadFull(br, payload); err != nil {
			return
		}
		if h.Masked {
			ws.Cipher(payload, h.Mask, 0)
		}
		switch h.OpCode {
		case ws.OpClose:
			code, _ := ws.ParseCloseFrameData(payload)
			u.mu.Lock()
			u.codes[code]++
			u.mu.Unlock()
			// Answer the Close, then the connection ends.
			wsutil.WriteServerMessage(c, ws.OpClose, ws.NewCloseFrameBody(code, ""))
			return
		case ws.OpPing:
			wsutil.WriteServerMessage(c, ws.OpPong, payload)
		case ws.OpText, ws.OpBinary, ws.OpContinuation:
			if err := ws.WriteFrame(c, ws.NewFrame(h.OpCode, h.Fin, payload)); err != nil {
				return
			}
		}
	}
}

func (u *wsUpstream) closeCodes() map[ws.StatusCode]int {
	u.mu.Lock()
	defer u.mu.Unlock()
	out := map[ws.StatusCode]int{}
	for k, v := range u.codes {
		out[k] = v
	}
	return out
}

// httpUpstream is a real HTTP server that reports the method, path and
// identity header it received.
type httpUpstream struct {
	*httptest.Server
	hits atomic.Int64
}

type httpSeen struct {
	Method, Path, User string
}

func newHTTPUpstream(t *testing.T) *httpUpstream {
	u := &httpUpstream{}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.hits.Add(1)
		io.Copy(io.Discard, r.Body)
		json.NewEncoder(w).Encode(httpSeen{r.Method, r.URL.Path, r.Header.Get("X-User")})
	}))
	t.Cleanup(u.Close)
	return u
}

// wsClient is one tunnel's client side.
type wsClient struct {
	conn net.Conn
	br   *bufio.Reader
}

func dialWS(ctx context.Context, url string) (*wsClient, error) {
	c, br, _, err := ws.Dialer{}.Dial(ctx, url)
	if err != nil {
		return nil, err
	}
	if br == nil {
		br = bufio.NewReader(c)
	}
	return &wsClient{conn: c, br: br}, nil
}

// send writes one masked text message.
func (c *wsClient) send(msg []byte) error {
	return wsutil.WriteClientText(c.conn, msg)
}

// errClosed is a Close frame where a message was expected; its code is in
// closeCode.
type closeError struct{ code ws.StatusCode }

func (e closeError) Error() string { return fmt.Sprintf("closed with %d", e.code) }

// recv reads the next data message, answering pings; a Close frame is a
// closeError.
func (c *wsClient) recv() ([]byte, error) {
	for {
		h, err := ws.ReadHeader(c.br)
		if err != nil {
			return nil, err
		}
		payload := make([]byte, h.Length)
		if _, err := io.ReadFull(c.br, payload); err != nil {
			return nil, err
		}
		switch h.OpCode {
		case ws.OpClose:
			code, _ := ws.ParseCloseFrameData(payload)
			return nil, closeError{code}
		case ws.OpPing:
			wsutil.WriteClientMessage(c.conn, ws.OpPong, payload)
		case ws.OpPong:
		default:
			return payload, nil
		}
	}
}

// close ends the tunnel from the client: Close 1000, then the echoed Close
// is awaited.
func (c *wsClient) close(timeout time.Duration) error {
	defer c.conn.Close()
	c.conn.SetDeadline(time.Now().Add(timeout))
	if err := wsutil.WriteClientMessage(c.conn, ws.OpClose, ws.NewCloseFrameBody(ws.StatusNormalClosure, "")); err != nil {
		return err
	}
	for {
		_, err := c.recv()
		var ce closeError
		if errors.As(err, &ce) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}
