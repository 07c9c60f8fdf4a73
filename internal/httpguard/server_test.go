package httpguard_test

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portcullis-proxy/portcullis/internal/httpguard"
)

// served is a real http.Server on loopback behind the guard, recording
// the requests its handler saw.
type served struct {
	addr string
	mu   sync.Mutex
	seen []string
}

func (s *served) saw() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.seen...)
}

// serve starts a guarded server. Its handler echoes the body it read, or
// the error reading it; a WebSocket-style upgrade is hijacked and echoes
// raw bytes after a 101.
func serve(t *testing.T, tlsConfig *tls.Config) *served {
	t.Helper()
	s := &served{}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.seen = append(s.seen, r.Method+" "+r.URL.Path)
		s.mu.Unlock()
		if r.Header.Get("Upgrade") == "echo" {
			conn, rw, err := http.NewResponseController(w).Hijack()
			if err != nil {
				t.Error(err)
				return
			}
			defer conn.Close()
			rw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n")
			rw.Flush()
			io.Copy(conn, rw)
			return
		}
		if r.Header.Get("Upgrade") != "" {
			http.Error(w, "no upgrade here", http.StatusForbidden)
			return
		}
		b, err := io.ReadAll(r.Body)
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprintf(w, "body: %v", err)
			return
		}
		tlsState := "plain"
		if r.TLS != nil {
			tlsState = "tls " + r.TLS.ServerName
		}
		fmt.Fprintf(w, "%s %q", tlsState, b)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	if tlsConfig != nil {
		ln = tls.NewListener(ln, tlsConfig)
	}
	ln = httpguard.Protect(srv, ln)
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	s.addr = ln.Addr().String()
	return s
}

// exchange writes the parts with a pause between them and returns
// everything the server sent until it closed or went quiet.
func exchange(t *testing.T, addr string, parts ...string) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i, p := range parts {
		if i > 0 {
			time.Sleep(100 * time.Millisecond)
		}
		if _, err := io.WriteString(c, p); err != nil {
			t.Fatal(err)
		}
	}
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	b, _ := io.ReadAll(c)
	return string(b)
}

// statuses reads the responses in resp and returns their status codes.
func statuses(resp string) []string {
	var out []string
	br := bufio.NewReader(strings.NewReader(resp))
	for {
		res, err := http.ReadResponse(br, nil)
		if err != nil {
			return out
		}
		io.Copy(io.Discard, res.Body)
		out = append(out, fmt.Sprint(res.StatusCode))
	}
}

// TestServerRefusesAmbiguousFraming: through a real server, a refused
// request is answered 400, its connection is closed and its handler never
// runs; requests before it on the same connection are served.
func TestServerRefusesAmbiguousFraming(t *testing.T) {
	s := serve(t, nil)
	const good = "GET /good HTTP/1.1\r\nHost: a\r\n\r\n"
	cases := []struct {
		name  string
		parts []string
		want  []string // statuses
		seen  []string // requests the handler saw
	}{
		{"CL and TE", []string{"POST /bad HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"}, []string{"400"}, nil},
		{"TE and CL, smuggling a GET", []string{"POST /bad HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 35\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n"}, []string{"400"}, nil},
		{"after a good request", []string{good + "POST /bad HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"}, []string{"200", "400"}, []string{"GET /good"}},
		{"HTTP/1.0 chunked", []string{"POST /bad HTTP/1.0\r\nHost: a\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n22\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n\r\n0\r\n\r\n"}, []string{"400"}, nil},
		{"obs-fold", []string{"POST /bad HTTP/1.1\r\nHost: a\r\nX: y\r\n Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\nabc"}, []string{"400"}, nil},
		{"bare LF after the first chunk size", []string{"POST /bad HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\r\n0\r\n\r\n"}, []string{"400"}, nil},
		{"first chunk size late", []string{"POST /late HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n", "3\r\nabc\r\n0\r\n\r\n" + good}, []string{"200", "200"}, []string{"POST /late", "GET /good"}},
		{"bare LF after a later chunk size", []string{"POST /body HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n", "3\nabc\r\n0\r\n\r\n" + good}, []string{"400"}, []string{"POST /body"}},
		{"upgrade refused, then a request", []string{"GET /up HTTP/1.1\r\nHost: a\r\nUpgrade: other\r\nConnection: Upgrade\r\n\r\n" + good}, []string{"403", "200"}, []string{"GET /up", "GET /good"}},
		{"upgrade refused, then smuggling", []string{"GET /up HTTP/1.1\r\nHost: a\r\nUpgrade: other\r\nConnection: Upgrade\r\n\r\nPOST /bad HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"}, []string{"403", "400"}, []string{"GET /up"}},
	}
	for _, tc := range cases {
		before := len(s.saw())
		resp := exchange(t, s.addr, tc.parts...)
		if got := statuses(resp); strings.Join(got, ",") != strings.Join(tc.want, ",") {
			t.Errorf("%s: statuses %v, want %v\n%s", tc.name, got, tc.want, resp)
		}
		if got := s.saw()[before:]; strings.Join(got, ",") != strings.Join(tc.seen, ",") {
			t.Errorf("%s: the handler saw %v, want %v", tc.name, got, tc.seen)
		}
	}
}

// TestServerBodyErrorIsMalformedBody: a framing refused mid-body fails the
// handler's body read with a 400 whose reason is MalformedBody.
func TestServerBodyErrorIsMalformedBody(t *testing.T) {
	s := serve(t, nil)
	resp := exchange(t, s.addr, "POST /body HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n", "3\r\nabcX0\r\n\r\n")
	if !strings.Contains(resp, httpguard.MalformedBody) {
		t.Errorf("answer %q, want the body error %q", resp, httpguard.MalformedBody)
	}
}

// TestServerUpgradeBytesPassUntouched: bytes a client sends right after an
// upgrade request, which as HTTP would be refused, reach the handler that
// took the connection over verbatim.
func TestServerUpgradeBytesPassUntouched(t *testing.T) {
	s := serve(t, nil)
	c, err := net.Dial("tcp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	early := "Transfer-Encoding : x\r\n \r\x00\n"
	io.WriteString(c, "GET /echo HTTP/1.1\r\nHost: a\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n"+early)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(c)
	res, err := http.ReadResponse(br, nil)
	if err != nil || res.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %v %v", res, err)
	}
	late := "GET / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"
	io.WriteString(c, late)
	got := make([]byte, len(early)+len(late))
	if _, err := io.ReadFull(br, got); err != nil || string(got) != early+late {
		t.Errorf("echoed %q (%v), want %q", got, err, early+late)
	}
}

// TestServerExpectContinueChunked: a client that waits for 100-continue
// before a chunked body is not stalled.
func TestServerExpectContinueChunked(t *testing.T) {
	s := serve(t, nil)
	pr, pw := io.Pipe()
	go func() {
		io.WriteString(pw, "streamed body")
		pw.Close()
	}()
	req, _ := http.NewRequest("POST", "http://"+s.addr+"/upload", pr)
	req.Header.Set("Expect", "100-continue")
	client := &http.Client{Transport: &http.Transport{ExpectContinueTimeout: 30 * time.Second}}
	start := time.Now()
	res, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || string(b) != `plain "streamed body"` {
		t.Errorf("%d %q", res.StatusCode, b)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("the request took %v: the client waited for 100-continue in vain", d)
	}
}

// TestServerTLSStateRestored: behind the guard a TLS listener's requests
// still carry r.TLS.
func TestServerTLSStateRestored(t *testing.T) {
	ts := httptest.NewTLSServer(http.NotFoundHandler())
	cfg := ts.TLS.Clone()
	ts.Close()
	s := serve(t, cfg)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true, ServerName: "example.com"}}}
	res, err := client.Post("https://"+s.addr+"/tls", "text/plain", strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if string(b) != `tls example.com "x"` {
		t.Errorf("handler saw %q, want the TLS state", b)
	}
}
