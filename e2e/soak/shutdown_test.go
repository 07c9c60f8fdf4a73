//go:build unix

package soak

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/portcullis-proxy/portcullis/testsupport/handlertest"
	"github.com/portcullis-proxy/portcullis/testsupport/servertest"
)

// TestSIGTERMClosesTunnelsAndExits: SIGTERM to the real binary with open
// tunnels and a request in flight. The process stops accepting, finishes
// the request, sends Close 1001 to both peers of every tunnel (whether the
// client answers the Close or not) and exits 0 within its shutdown grace.
func TestSIGTERMClosesTunnelsAndExits(t *testing.T) {
	const (
		tunnels = 40
		grace   = 5 * time.Second
	)
	wsUp := newWSUpstream(t)
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(time.Second)
		io.WriteString(w, "finished")
	}))
	defer slow.Close()
	tunnel := route("ws", wsUp.url, "allow", "noop")
	tunnel.More = []string{"websocket: {close_grace: 1s}"}
	rules := handlertest.Rules(tunnel, handlertest.Rule{ID: "slow", URL: "http://<[^/]+>/slow", Upstream: slow.URL})
	p := startProxy(t, "log: {level: warn}\nauthenticators: {anonymous: {enabled: true}}\nauthorizers: {allow: {enabled: true}}\nmutators: {noop: {enabled: true}}\n", rules, grace)

	clients := make([]*wsClient, tunnels)
	for i := range clients {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		cl, err := dialWS(ctx, fmt.Sprintf("%s/ws/%d", p.WSURL(), i))
		cancel()
		if err != nil {
			t.Fatalf("tunnel %d: %v", i, err)
		}
		defer cl.conn.Close()
		cl.conn.SetDeadline(time.Now().Add(10 * time.Second))
		if err := cl.send([]byte("hello")); err != nil {
			t.Fatal(err)
		}
		if got, err := cl.recv(); err != nil || string(got) != "hello" {
			t.Fatalf("tunnel %d echo: %q %v", i, got, err)
		}
		cl.conn.SetDeadline(time.Time{})
		clients[i] = cl
	}

	inFlight := servertest.FetchLater(p.URL() + "/slow")
	time.Sleep(200 * time.Millisecond) // the request reached the slow upstream

	sent := time.Now()
	p.Signal(t, syscall.SIGTERM)
	// While the request in flight finishes, nothing new is accepted.
	time.Sleep(150 * time.Millisecond)
	if c, err := net.DialTimeout("tcp", p.Addr("proxy"), time.Second); err == nil {
		c.Close()
		t.Error("new connections accepted during shutdown")
	}

	// Every client reads Close 1001; even-numbered ones answer it, the
	// others leave the proxy to its close grace.
	var wg sync.WaitGroup
	codes := make([]string, tunnels)
	for i, cl := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl.conn.SetReadDeadline(time.Now().Add(grace + 5*time.Second))
			_, err := cl.recv()
			var ce closeError
			if !errors.As(err, &ce) {
				codes[i] = fmt.Sprintf("no Close frame: %v", err)
				return
			}
			codes[i] = fmt.Sprint(ce.code)
			if i%2 == 0 {
				wsutil.WriteClientMessage(cl.conn, ws.OpClose, ws.NewCloseFrameBody(ce.code, ""))
			}
			io.Copy(io.Discard, cl.conn) // until the proxy closes the connection
		}()
	}
	wg.Wait()
	for i, c := range codes {
		if c != "1001" {
			t.Errorf("tunnel %d: %s, want Close 1001", i, c)
		}
	}
	if got := <-inFlight; got != "200 finished" {
		t.Errorf("the request in flight at SIGTERM: %q, want it finished", got)
	}

	select {
	case <-p.Done():
	case <-time.After(grace + 5*time.Second):
		t.Fatalf("still running %v after SIGTERM (grace %v)", time.Since(sent), grace)
	}
	exited := time.Since(sent)
	t.Logf("exited %v after SIGTERM (grace %v): %v", exited.Round(time.Millisecond), grace, p.Err())
	if err := p.Err(); err != nil {
		t.Errorf("exit: %v, want status 0\n%s", err, p.Logs())
	}
	if exited > grace+time.Second {
		t.Errorf("exited %v after SIGTERM, beyond the %v grace", exited, grace)
	}
	if up := wsUp.closeCodes(); up[1001] != tunnels {
		t.Errorf("the upstream saw Close codes %v, want 1001 on all %d tunnels", up, tunnels)
	}
	if c, err := net.DialTimeout("tcp", p.Addr("proxy"), time.Second); err == nil {
		c.Close()
		t.Error("the proxy port still accepts connections after exit")
	}
}
