package app_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portcullis-proxy/portcullis/testsupport/faultinject"
	"github.com/portcullis-proxy/portcullis/testsupport/handlertest"
)

// upstreamView is what the reporting upstream saw of a request.
type upstreamView struct {
	Path       string      `json:"path"`
	RequestURI string      `json:"request_uri"`
	Header     http.Header `json:"header"`
}

// reportingUpstream is a real HTTP server that answers with what it saw.
func reportingUpstream(t *testing.T) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Upstream", "yes")
		json.NewEncoder(w).Encode(upstreamView{Path: r.URL.Path, RequestURI: r.RequestURI, Header: r.Header})
	}))
	t.Cleanup(srv.Close)
	return srv
}

// rawGet sends a request with the given target and extra header lines as
// raw bytes and returns the answer, and what the upstream saw when it was
// reached.
func rawGet(t *testing.T, addr, target string, headers ...string) (*http.Response, *upstreamView) {
	t.Helper()
	head := fmt.Sprintf("GET %s HTTP/1.1\r\nHost: proxy.test\r\n%s", target, strings.Join(append(headers, ""), "\r\n"))
	res, body, err := handlertest.RawRequest(t, addr, head)
	if res == nil {
		t.Fatalf("GET %s: %v", target, err)
	}
	if res.Header.Get("X-Upstream") != "yes" {
		return res, nil
	}
	var v upstreamView
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatalf("GET %s: %v", target, err)
	}
	return res, &v
}

const hostileConfig = `
authenticators: {anonymous: {enabled: true}}
authorizers: {allow: {enabled: true}, deny: {enabled: true}}
mutators: {header: {enabled: true, config: {headers: {X-User: "{{ print .Subject }}"}}}, noop: {enabled: true}}
`

// hostileRules: /public/ is open to anyone and names the subject to the
// upstream; /admin and below are denied.
func hostileRules(upstream string) string {
	return handlertest.Rules(
		handlertest.Rule{ID: "public", URL: "http://<[^/]+>/public/<.*>", Mutators: []string{"header"}, Upstream: upstream},
		handlertest.Rule{ID: "admin", URL: "http://<[^/]+>/admin<.*>", Authorizer: "deny", Upstream: upstream},
	)
}

// TestPathConfusion: however a path is spelt, the rule that decides is the
// rule the path the upstream reads belongs to. A spelling that leads into
// /admin is denied by the admin rule; one that stays in /public reaches
// the upstream as the clean path that was matched; one that matches no
// rule (other case) reaches nothing.
func TestPathConfusion(t *testing.T) {
	up := reportingUpstream(t)
	s := startServer(t, hostileConfig, hostileRules(up.URL))
	const denied = ""
	cases := []struct {
		target string
		path   string // the path the upstream reads; denied: not forwarded
	}{
		{"/public/x", "/public/x"},
		{"/public/../admin/x", denied},
		{"/public/./../admin/x", denied},
		{"/public/%2e%2e/admin/x", denied},
		{"/public/%2E%2E/admin", denied},
		{"/public/..%2fadmin", denied},
		{"/public/%2e%2e%2fadmin", denied},
		{"/public/.%2e/admin", denied},
		{"//admin/x", denied},
		{"/./admin", denied},
		{"/%61dmin/x", denied},
		{"/admin%2f..%2fpublic/x", "/public/x"},
		{"/public//x", "/public/x"},
		{"/public/./x", "/public/x"},
		{"/public/a%2Fb", "/public/a/b"},
		{"/public/a/b/", "/public/a/b/"},
		{"/public/%252e%252e/admin", "/public/%2e%2e/admin"},
		{"/public/x?next=/../admin", "/public/x"},
		{"/ADMIN/x", denied},
		{"/Public/x", denied},
		{"/public\\..\\admin", denied},
		{"http://other.example/admin/x", denied},
		{"http://other.example/public/../admin", denied},
	}
	for _, tc := range cases {
		res, seen := rawGet(t, s.Addr("proxy"), tc.target)
		switch {
		case tc.path == denied && seen != nil:
			t.Errorf("%s reached the upstream as %q", tc.target, seen.Path)
		case tc.path == denied && res.StatusCode < 400:
			t.Errorf("%s: %d", tc.target, res.StatusCode)
		case tc.path != denied && seen == nil:
			t.Errorf("%s: %d, want it forwarded as %s", tc.target, res.StatusCode, tc.path)
		case tc.path != denied && seen.Path != tc.path:
			t.Errorf("%s reached the upstream as %q (request line %q), want %q", tc.target, seen.Path, seen.RequestURI, tc.path)
		}
	}
}

// TestIdentityHeadersCannotBeForged: the identity header a mutator sets
// reaches the upstream with the mutator's value alone, whatever the client
// sent under that name (any case, repeated, folded into a list) and even
// when the client names it in Connection to have it dropped; the decision
// API answers the same. Other hop-by-hop headers the client sends do not
// reach the upstream.
func TestIdentityHeadersCannotBeForged(t *testing.T) {
	up := reportingUpstream(t)
	s := startServer(t, hostileConfig, hostileRules(up.URL))
	cases := []struct {
		name    string
		headers []string
	}{
		{"spoofed", []string{"X-User: admin"}},
		{"spoofed in lower case", []string{"x-user: admin"}},
		{"spoofed twice", []string{"X-User: admin", "X-USER: root"}},
		{"named in Connection", []string{"Connection: X-User", "X-User: admin"}},
		{"named in Connection with others", []string{"Connection: keep-alive, X-User, X-Forwarded-For", "X-User: admin"}},
		{"hop-by-hop noise", []string{"Keep-Alive: timeout=5", "TE: trailers", "Proxy-Connection: keep-alive", "Proxy-Authorization: Basic YTpi"}},
	}
	for _, tc := range cases {
		res, seen := rawGet(t, s.Addr("proxy"), "/public/x", tc.headers...)
		if seen == nil {
			t.Fatalf("%s: %d, not forwarded", tc.name, res.StatusCode)
		}
		if got := seen.Header.Values("X-User"); len(got) != 1 || got[0] != "anonymous" {
			t.Errorf("%s: the upstream saw X-User %q, want only the mutator's \"anonymous\"", tc.name, got)
		}
		if seen.Header.Get("X-Forwarded-For") == "" {
			t.Errorf("%s: X-Forwarded-For was dropped", tc.name)
		}
		// (TE: trailers is the proxy's own: it relays trailers.)
		for _, h := range []string{"Keep-Alive", "Proxy-Connection", "Proxy-Authorization"} {
			if v := seen.Header.Get(h); v != "" {
				t.Errorf("%s: hop-by-hop %s reached the upstream: %q", tc.name, h, v)
			}
		}
		res, _ = rawGet(t, s.Addr("api"), "/decisions/public/x", tc.headers...)
		if got := res.Header.Values("X-User"); res.StatusCode != 200 || len(got) != 1 || got[0] != "anonymous" {
			t.Errorf("%s: the decision API answered %d with X-User %q", tc.name, res.StatusCode, got)
		}
	}
}

// switchingUpstream is a backend that agrees to any protocol switch
// (h2c, a custom protocol, a loosely spelt WebSocket upgrade) with a 101
// naming what was asked, then echoes raw bytes: a real server of that kind.
func switchingUpstream(t *testing.T) string {
	return "http://" + faultinject.Serve(t, func(c net.Conn) {
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		br := bufio.NewReader(c)
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		if up := req.Header.Get("Upgrade"); up != "" {
			fmt.Fprintf(c, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: %s\r\n\r\n", up)
			io.Copy(c, br)
			return
		}
		io.WriteString(c, "HTTP/1.1 426 Upgrade Required\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
	})
}

// TestOnlyWebSocketUpgradesAreTunnelled: an upgrade to anything but
// WebSocket, or a WebSocket upgrade spelt so that the tunnel does not take
// it, is never switched by the plain proxy path, even with a backend that
// agrees: it would be a raw connection with none of the tunnel's checks
// (origin, lifetime, session binding).
func TestOnlyWebSocketUpgradesAreTunnelled(t *testing.T) {
	s := startServer(t, tunnelConfig, tunnelRule(switchingUpstream(t)))
	for _, upgrade := range []string{"h2c", "websocket, x-other", "x-other, websocket", "tcp", "WebSocket/13"} {
		res, _ := rawGet(t, s.Addr("proxy"), "/chat", "Connection: Upgrade", "Upgrade: "+upgrade,
			"Sec-WebSocket-Version: 13", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==")
		if res.StatusCode == http.StatusSwitchingProtocols && s.App().Tunnels.Active() == 0 {
			t.Errorf("Upgrade: %s was switched outside the tunnel", upgrade)
		}
	}
}

// TestFramingRefusedMidBody: a chunked body whose framing goes wrong after
// the request was handed on (a bare LF ending a later chunk-size line) is
// answered 400 and ends the connection: the upstream never receives a
// complete body, and a request smuggled after the bad line never reaches it.
func TestFramingRefusedMidBody(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		mu.Lock()
		seen = append(seen, fmt.Sprintf("%s %s %q %v", r.Method, r.URL.Path, b, err != nil))
		mu.Unlock()
	}))
	defer up.Close()
	s := startServer(t, openConfig, openRules(up.URL))
	c := handlertest.Dial(t, s.Addr("proxy"), 10*time.Second)
	defer c.Close()
	io.WriteString(c, "POST /upload HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n")
	time.Sleep(200 * time.Millisecond) // the request is on its way upstream
	io.WriteString(c, "3\nabc\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n")
	res, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusBadRequest {
		t.Errorf("answered %d %s, want 400", res.StatusCode, body)
	}
	time.Sleep(200 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	for _, s := range seen {
		if strings.Contains(s, "/smuggled") || strings.HasSuffix(s, "false") {
			t.Errorf("the upstream received %s", s)
		}
	}
}
