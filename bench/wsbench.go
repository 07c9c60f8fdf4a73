package main

import (
	"context"
	"fmt"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/gobwas/ws"

	"github.com/portcullis-proxy/portcullis/testsupport/wsframe"
)

// wsConn is a measuring client connection.
type wsConn struct {
	conn net.Conn
	fr   *wsframe.Reader
}

func dialWS(ctx context.Context, u string) (*wsConn, error) {
	d := ws.Dialer{Timeout: 10 * time.Second}
	conn, br, _, err := d.Dial(ctx, u)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", u, err)
	}
	if br != nil {
		conn.Close()
		return nil, fmt.Errorf("dial %s: unexpected bytes after the handshake", u)
	}
	return &wsConn{conn: conn, fr: wsframe.NewReader(conn, 64<<10)}, nil
}

func (c *wsConn) close() {
	_ = c.conn.SetDeadline(time.Now().Add(2 * time.Second))
	_ = ws.WriteFrame(c.conn, ws.MaskFrameInPlace(ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusNormalClosure, ""))))
	for {
		h, err := c.fr.Skip()
		if err != nil || h.OpCode == ws.OpClose {
			break
		}
	}
	c.conn.Close()
}

// echoResult is one echo round over all connections of a target.
type echoResult struct {
	MsgsPerSec float64 // round trips per second, all connections together
	P50, P99   time.Duration
	N          int           // round trips
	ProxyCPU   time.Duration // the proxy process's CPU time per round trip
}

// echoRound runs 64-byte round trips on every connection for d: each
// connection sends a message, waits for its echo, and sends the next.
func echoRound(conns []*wsConn, d time.Duration) (echoResult, error) {
	msg := wsframe.Masked(ws.OpBinary, make([]byte, 64))
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		all  []time.Duration
		n    int
		ferr error
	)
	start := time.Now()
	stop := start.Add(d)
	for _, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rtts := make([]time.Duration, 0, 16<<10)
			for {
				t := time.Now()
				if !t.Before(stop) {
					break
				}
				if _, err := c.conn.Write(msg); err != nil {
					mu.Lock()
					ferr = err
					mu.Unlock()
					return
				}
				if _, err := c.fr.Skip(); err != nil {
					mu.Lock()
					ferr = err
					mu.Unlock()
					return
				}
				rtts = append(rtts, time.Since(t))
			}
			mu.Lock()
			all = append(all, rtts...)
			n += len(rtts)
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if ferr != nil {
		return echoResult{}, ferr
	}
	slices.Sort(all)
	return echoResult{MsgsPerSec: float64(n) / elapsed.Seconds(), P50: pct(all, 50), P99: pct(all, 99), N: n}, nil
}

// bulkRound sends 32 KiB binary frames on c for d, then a text frame the
// upstream answers with "ok"; it returns MiB/s from the first byte sent to
// the answer (so every byte has reached the upstream), and the MiB sent.
func bulkRound(c *wsConn, d time.Duration) (rate, mib float64, err error) {
	const size = 32 << 10
	data := wsframe.Masked(ws.OpBinary, make([]byte, size))
	done := wsframe.Masked(ws.OpText, []byte("done"))
	got := make(chan error, 1)
	go func() {
		_ = c.conn.SetReadDeadline(time.Now().Add(d + 30*time.Second))
		h, err := c.fr.Skip()
		if err == nil && h.OpCode != ws.OpText {
			err = fmt.Errorf("bulk: unexpected answer opcode %v", h.OpCode)
		}
		got <- err
	}()
	start := time.Now()
	stop := start.Add(d)
	frames := 0
	for time.Now().Before(stop) {
		// Sixteen frames between clock reads.
		for range 16 {
			if _, err := c.conn.Write(data); err != nil {
				return 0, 0, err
			}
		}
		frames += 16
	}
	if _, err := c.conn.Write(done); err != nil {
		return 0, 0, err
	}
	if err := <-got; err != nil {
		return 0, 0, err
	}
	elapsed := time.Since(start)
	mib = float64(frames) * size / (1 << 20)
	return mib / elapsed.Seconds(), mib, nil
}
