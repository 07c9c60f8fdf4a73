package tunnel

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/portcullis-proxy/portcullis/pipeline"
	"github.com/portcullis-proxy/portcullis/testsupport/faultinject"
)

func TestTunnelSubprotocols(t *testing.T) { EachRelay(t, testTunnelSubprotocols) }

func testTunnelSubprotocols(t *testing.T, relay Relay) {
	const token = "base64url.bearer.authorization.k8s.io.c2VjcmV0"
	tests := []struct {
		name         string
		offered      []string
		scrub        []string
		selectFirst  bool
		wantUpstream []string
		wantClient   string
	}{
		{
			name:         "upstream picks among the offers",
			offered:      []string{"chat", "superchat"},
			selectFirst:  false,
			wantUpstream: []string{"chat", "superchat"},
			wantClient:   "superchat",
		},
		{
			name:         "token carrier removed",
			offered:      []string{"chat", token},
			scrub:        []string{token},
			selectFirst:  true,
			wantUpstream: []string{"chat"},
			wantClient:   "chat",
		},
		{
			name:         "only a token carrier",
			offered:      []string{token},
			scrub:        []string{token},
			selectFirst:  true,
			wantUpstream: nil,
			wantClient:   "",
		},
		{
			name:         "no subprotocol",
			selectFirst:  true,
			wantUpstream: nil,
			wantClient:   "",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			up := newUpstream(t)
			up.selectProtocol = func(offered []string) string {
				switch {
				case len(offered) == 0:
					return ""
				case tc.selectFirst:
					return offered[0]
				default:
					return offered[len(offered)-1]
				}
			}
			h := newHarness(t, relay, up.url())
			h.withSession(func() *pipeline.Session {
				return &pipeline.Session{Subject: "alice", Scrub: pipeline.Scrub{Subprotocols: tc.scrub}}
			})
			c := h.dial("/proto", dialOpts{protocols: tc.offered})
			if c.hs.Protocol != tc.wantClient {
				t.Errorf("client's subprotocol = %q, want %q", c.hs.Protocol, tc.wantClient)
			}
			up.mu.Lock()
			got := up.offered[0]
			up.mu.Unlock()
			if !slices.Equal(got, tc.wantUpstream) {
				t.Errorf("upstream was offered %q, want %q", got, tc.wantUpstream)
			}
			if raw := up.lastRequest().Header.Get("Sec-WebSocket-Protocol"); strings.Contains(raw, token) {
				t.Errorf("token carrier reached the upstream: %q", raw)
			}
		})
	}
}

func TestTunnelForwardedHeaders(t *testing.T) { EachRelay(t, testTunnelForwardedHeaders) }

func testTunnelForwardedHeaders(t *testing.T, relay Relay) {
	tests := []struct {
		name           string
		forwardCookies bool
		sessionCookies map[string]string
		preserveHost   bool
		wantCookie     string
	}{
		{
			name:           "client cookies forwarded",
			forwardCookies: true,
			wantCookie:     "ory_kratos_session=abc; theme=dark",
		},
		{
			name:           "client cookies withheld",
			forwardCookies: false,
			wantCookie:     "",
		},
		{
			name:           "client cookies withheld, mutator cookie kept",
			forwardCookies: false,
			sessionCookies: map[string]string{"upstream_id": "u-1"},
			wantCookie:     "upstream_id=u-1",
		},
		{
			name:           "host preserved",
			forwardCookies: true,
			preserveHost:   true,
			wantCookie:     "ory_kratos_session=abc; theme=dark",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			up := newUpstream(t)
			h := newHarness(t, relay, up.url())
			h.preserveHost = tc.preserveHost
			h.configure(func(p *pipeline.WebSocketPolicy) { p.ForwardCookies, p.AnyOrigin = tc.forwardCookies, true })
			h.withSession(func() *pipeline.Session {
				s := &pipeline.Session{Subject: "alice", Header: http.Header{"X-User": {"alice"}}, Cookies: tc.sessionCookies}
				return s
			})
			hdr := http.Header{
				"Cookie":   {"ory_kratos_session=abc; theme=dark"},
				"Origin":   {"https://app.example"},
				"X-Client": {"1"},
			}
			h.dial("/headers?room=7", dialOpts{header: hdr})
			r := up.lastRequest()
			if got := r.Header.Get("Cookie"); got != tc.wantCookie {
				t.Errorf("upstream Cookie = %q, want %q", got, tc.wantCookie)
			}
			for name, want := range map[string]string{"Origin": "https://app.example", "X-Client": "1", "X-User": "alice"} {
				if got := r.Header.Get(name); got != want {
					t.Errorf("upstream %s = %q, want %q", name, got, want)
				}
			}
			if r.URL.RequestURI() != "/headers?room=7" {
				t.Errorf("upstream request URI = %q, want /headers?room=7", r.URL.RequestURI())
			}
			wantHost := strings.TrimPrefix(up.url(), "http://")
			if tc.preserveHost {
				wantHost = strings.TrimPrefix(h.front.URL, "http://")
			}
			if r.Host != wantHost {
				t.Errorf("upstream Host = %q, want %q", r.Host, wantHost)
			}
		})
	}
}

func TestTunnelOrigin(t *testing.T) { EachRelay(t, testTunnelOrigin) }

func testTunnelOrigin(t *testing.T, relay Relay) {
	up := newUpstream(t)
	h := newHarness(t, relay, up.url())
	h.configure(func(p *pipeline.WebSocketPolicy) {
		p.AllowedOrigins = map[string]bool{"https://app.example": true}
	})
	tests := []struct {
		origin string
		want   int
	}{
		{origin: "https://app.example", want: http.StatusSwitchingProtocols},
		{origin: "https://APP.example/", want: http.StatusSwitchingProtocols},
		{origin: "", want: http.StatusSwitchingProtocols}, // not a browser
		{origin: "https://evil.example", want: http.StatusForbidden},
		{origin: "http://app.example", want: http.StatusForbidden},
		{origin: "null", want: http.StatusForbidden},
	}
	for _, tc := range tests {
		t.Run(tc.origin, func(t *testing.T) {
			hdr := http.Header{}
			if tc.origin != "" {
				hdr.Set("Origin", tc.origin)
			}
			up.mu.Lock()
			before := len(up.offered)
			up.mu.Unlock()
			_, err := h.tryDial("/origin", dialOpts{header: hdr})
			got := http.StatusSwitchingProtocols
			if err != nil {
				ref, ok := err.(*refusal)
				if !ok {
					t.Fatalf("dial: %v", err)
				}
				got = ref.status
				if want := "403 Forbidden: origin not allowed"; ref.message() != want {
					t.Errorf("refusal = %q, want %q", ref.message(), want)
				}
				up.mu.Lock()
				dialed := len(up.offered) != before
				up.mu.Unlock()
				if dialed {
					t.Errorf("the upstream was dialled for a refused origin")
				}
			}
			if got != tc.want {
				t.Errorf("Origin %q: status %d, want %d", tc.origin, got, tc.want)
			}
		})
	}
}

// TestTunnelOriginDefaultSameOrigin: without allowed_origins only the
// request's own origin passes (a cross-site page cannot open a
// cookie-authenticated WebSocket), a request without Origin (not a browser)
// passes, and two Origin headers are refused; allowed_origins: ["*"] opts
// out.
func TestTunnelOriginDefaultSameOrigin(t *testing.T) { EachRelay(t, testTunnelOriginDefaultSameOrigin) }

func testTunnelOriginDefaultSameOrigin(t *testing.T, relay Relay) {
	up := newUpstream(t)
	h := newHarness(t, relay, up.url())
	self := h.front.URL // http://127.0.0.1:port, what the client dialled
	tests := []struct {
		name    string
		origins []string
		any     bool
		want    int
	}{
		{"same origin", []string{self}, false, http.StatusSwitchingProtocols},
		{"same origin, other case and a slash", []string{strings.ToUpper(self) + "/"}, false, http.StatusSwitchingProtocols},
		{"no Origin", nil, false, http.StatusSwitchingProtocols},
		{"cross site", []string{"https://evil.example"}, false, http.StatusForbidden},
		{"other scheme", []string{strings.Replace(self, "http://", "https://", 1)}, false, http.StatusForbidden},
		{"other port", []string{"http://127.0.0.1:1"}, false, http.StatusForbidden},
		{"null", []string{"null"}, false, http.StatusForbidden},
		{"two Origin headers", []string{self, self}, false, http.StatusForbidden},
		{"any, cross site", []string{"https://evil.example"}, true, http.StatusSwitchingProtocols},
		{"any, two Origin headers", []string{self, "https://evil.example"}, true, http.StatusForbidden},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h.configure(func(p *pipeline.WebSocketPolicy) { p.AnyOrigin = tc.any })
			hdr := http.Header{}
			if tc.origins != nil {
				hdr["Origin"] = tc.origins
			}
			got := http.StatusSwitchingProtocols
			if _, err := h.tryDial("/origin", dialOpts{header: hdr}); err != nil {
				ref, ok := err.(*refusal)
				if !ok {
					t.Fatalf("dial: %v", err)
				}
				got = ref.status
			}
			if got != tc.want {
				t.Errorf("Origin %q: status %d, want %d", tc.origins, got, tc.want)
			}
		})
	}
}

// rawUpstream answers every connection with the bytes of answer and
// closes it.
func rawUpstream(t *testing.T, answer string) string {
	t.Helper()
	return "http://" + faultinject.Serve(t, func(conn net.Conn) {
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(ioWait))
		if _, err := http.ReadRequest(bufio.NewReader(conn)); err != nil {
			return
		}
		_, _ = io.WriteString(conn, answer)
	})
}

func TestTunnelUpstreamRefusal(t *testing.T) { EachRelay(t, testTunnelUpstreamRefusal) }

func testTunnelUpstreamRefusal(t *testing.T, relay Relay) {
	forbidden := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "no websockets for you", http.StatusForbidden)
	}))
	t.Cleanup(forbidden.Close)
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "hello")
	}))
	t.Cleanup(plain.Close)

	tests := []struct {
		name       string
		upstream   string
		wantStatus int
		wantResult string
	}{
		{name: "upstream refuses", upstream: forbidden.URL, wantStatus: http.StatusForbidden, wantResult: "upstream_refused"},
		{name: "upstream is not a WebSocket server", upstream: plain.URL, wantStatus: http.StatusBadGateway, wantResult: "upstream_refused"},
		{name: "upstream unreachable", upstream: faultinject.RefusingURL(t), wantStatus: http.StatusBadGateway, wantResult: "upstream_unreachable"},
		{
			name:       "upstream answers a bad handshake",
			upstream:   rawUpstream(t, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: bm9wZQ==\r\n\r\n"),
			wantStatus: http.StatusBadGateway,
			wantResult: "upstream_bad_handshake",
		},
		{
			name:       "upstream picks a subprotocol nobody offered",
			upstream:   rawUpstream(t, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Protocol: other\r\n\r\n"),
			wantStatus: http.StatusBadGateway,
			wantResult: "upstream_bad_handshake",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, relay, tc.upstream)
			_, err := h.tryDial("/refused", dialOpts{protocols: []string{"chat"}})
			ref, ok := err.(*refusal)
			if !ok {
				t.Fatalf("dial error = %v, want an HTTP refusal", err)
			}
			if ref.status != tc.wantStatus {
				t.Errorf("status = %d, want %d (%s)", ref.status, tc.wantStatus, ref.message())
			}
			if !strings.HasPrefix(ref.message(), fmt.Sprint(tc.wantStatus)) {
				t.Errorf("body = %q, want a JSON error with code %d", ref.body, tc.wantStatus)
			}
			if n := h.metrics.handshake(tc.wantResult); n != 1 {
				t.Errorf("handshake result %q counted %d times, want 1", tc.wantResult, n)
			}
			if h.tunnels.Active() != 0 {
				t.Errorf("active tunnels = %d after a refusal", h.tunnels.Active())
			}
		})
	}
}

// TestTunnelBadClientHandshake: malformed upgrades are refused before the
// upstream is dialled.
func TestTunnelBadClientHandshake(t *testing.T) { EachRelay(t, testTunnelBadClientHandshake) }

func testTunnelBadClientHandshake(t *testing.T, relay Relay) {
	up := newUpstream(t)
	h := newHarness(t, relay, up.url())
	good := func() http.Header {
		return http.Header{
			"Upgrade":               {"websocket"},
			"Connection":            {"keep-alive, Upgrade"},
			"Sec-Websocket-Key":     {"dGhlIHNhbXBsZSBub25jZQ=="},
			"Sec-Websocket-Version": {"13"},
		}
	}
	tests := []struct {
		name   string
		method string
		edit   func(http.Header)
		want   int
	}{
		{name: "POST", method: http.MethodPost, edit: func(http.Header) {}, want: http.StatusMethodNotAllowed},
		{name: "version 8", method: http.MethodGet, edit: func(h http.Header) { h.Set("Sec-WebSocket-Version", "8") }, want: http.StatusUpgradeRequired},
		{name: "no version", method: http.MethodGet, edit: func(h http.Header) { h.Del("Sec-WebSocket-Version") }, want: http.StatusBadRequest},
		{name: "short key", method: http.MethodGet, edit: func(h http.Header) { h.Set("Sec-WebSocket-Key", "c2hvcnQ=") }, want: http.StatusBadRequest},
		{name: "no Connection upgrade", method: http.MethodGet, edit: func(h http.Header) { h.Set("Connection", "keep-alive") }, want: http.StatusBadRequest},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(tc.method, h.front.URL+"/bad", nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Header = good()
			tc.edit(req.Header)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Errorf("status = %d, want %d", resp.StatusCode, tc.want)
			}
			if tc.want == http.StatusUpgradeRequired && resp.Header.Get("Sec-WebSocket-Version") != "13" {
				t.Errorf("426 without Sec-WebSocket-Version: 13")
			}
		})
	}
	if up.lastRequest() != nil {
		t.Errorf("the upstream was dialled for a malformed upgrade")
	}
}

func TestTunnelMaxConnections(t *testing.T) { EachRelay(t, testTunnelMaxConnections) }

func testTunnelMaxConnections(t *testing.T, relay Relay) {
	up := newUpstream(t)
	h := newHarness(t, relay, up.url())
	h.configure(func(p *pipeline.WebSocketPolicy) { p.MaxConnections = 2 })
	a := h.dial("/a", dialOpts{})
	h.dial("/b", dialOpts{})
	_, err := h.tryDial("/c", dialOpts{})
	ref, ok := err.(*refusal)
	if !ok || ref.status != http.StatusServiceUnavailable {
		t.Fatalf("third upgrade: %v, want 503", err)
	}
	if want := "503 Service Unavailable: too many WebSocket connections"; ref.message() != want {
		t.Errorf("refusal = %q, want %q", ref.message(), want)
	}
	a.write(ws.OpClose, true, ws.NewCloseFrameBody(ws.StatusNormalClosure, ""))
	a.read()
	h.waitActive(1)
	h.dial("/d", dialOpts{})
	h.waitActive(2)
}

// hangingUpstream is a fault injector: an upstream that accepts
// connections and never answers the upgrade. Each connection is reported
// on the returned channel once the proxy closed it.
func hangingUpstream(t *testing.T) (string, chan struct{}) {
	t.Helper()
	closed := make(chan struct{}, 16)
	target := "http://" + faultinject.Serve(t, func(conn net.Conn) {
		defer conn.Close()
		_ = conn.SetReadDeadline(time.Now().Add(ioWait))
		if _, err := io.Copy(io.Discard, conn); err == nil {
			closed <- struct{}{} // EOF: the proxy hung up
		}
	})
	return target, closed
}

func TestTunnelHangingUpstream(t *testing.T) { EachRelay(t, testTunnelHangingUpstream) }

func testTunnelHangingUpstream(t *testing.T, relay Relay) {
	t.Run("client leaves during the dial", func(t *testing.T) {
		target, closed := hangingUpstream(t)
		h := newHarness(t, relay, target)
		conn, err := net.Dial("tcp", strings.TrimPrefix(h.front.URL, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(conn, "GET /hang HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
		time.Sleep(100 * time.Millisecond) // the proxy is dialling
		conn.Close()
		select {
		case <-closed:
		case <-time.After(ioWait):
			t.Fatal("the proxy kept the upstream connection of a client that left")
		}
		waitFor(t, "the handshake counted as client_failed", func() bool { return h.metrics.handshake("client_failed") == 1 })
	})
	t.Run("upstream times out", func(t *testing.T) {
		target, _ := hangingUpstream(t)
		h := newHarnessWith(t, relay, target, nil, func(o *Options) { o.HandshakeTimeout = 200 * time.Millisecond })
		_, err := h.tryDial("/hang", dialOpts{})
		var ref *refusal
		if !errors.As(err, &ref) || ref.status != http.StatusGatewayTimeout {
			t.Fatalf("dial: %v, want 504", err)
		}
		if n := h.metrics.handshake("upstream_timeout"); n != 1 {
			t.Errorf("upstream_timeout counted %d times, want 1", n)
		}
	})
}
