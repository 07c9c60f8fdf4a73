package app_test

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portcullis-proxy/portcullis/testsupport/faultinject"
	"github.com/portcullis-proxy/portcullis/testsupport/handlertest"
	"github.com/portcullis-proxy/portcullis/testsupport/servertest"
)

// openRules lets anyone GET or POST anything through to upstream, naming
// the subject.
func openRules(upstream string) string {
	return handlertest.Rules(handlertest.Rule{ID: "open", URL: "<https?>://<[^/]+>/<.*>", Methods: []string{"GET", "POST"}, Mutators: []string{"header"}, Upstream: upstream})
}

const openConfig = `
authenticators: {anonymous: {enabled: true}}
authorizers: {allow: {enabled: true}}
mutators: {header: {enabled: true, config: {headers: {X-User: "{{ print .Subject }}"}}}}
`

// countingUpstream is a real upstream that counts the requests reaching it.
func countingUpstream(t *testing.T) (*httptest.Server, *atomic.Int64) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "upstream got %d bytes", len(b))
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

// rawExchange sends raw bytes to addr and returns the first response line.
func rawExchange(t *testing.T, addr, raw string) string {
	t.Helper()
	c := handlertest.Dial(t, addr, 5*time.Second)
	defer c.Close()
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil && line == "" {
		return "connection closed: " + err.Error()
	}
	return strings.TrimSpace(line)
}

// TestRequestSmugglingIsRefused sends requests whose length is ambiguous;
// each must be answered 400 (501 for an unknown transfer coding) by the
// proxy and never reach the upstream.
func TestRequestSmugglingIsRefused(t *testing.T) {
	up, hits := countingUpstream(t)
	s := startServer(t, openConfig, openRules(up.URL))
	addr := s.Addr("proxy")
	cases := []struct{ name, raw string }{
		{"two different CL", "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nContent-Length: 40\r\n\r\nabcd"},
		{"CL list", "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 4, 40\r\n\r\nabcd"},
		{"TE chunked not last", "POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n"},
		{"TE obfuscated", "POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n"},
		{"TE with space before colon", "POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n"},
		{"negative CL", "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n"},
		{"CL with plus", "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: +4\r\n\r\nabcd"},
		// Accepted by net/http alone; refused by internal/httpguard.
		{"CL then TE", "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"},
		{"TE then CL smuggling a GET", "POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 37\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n"},
		{"TE with CL 0", "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"},
		{"TE on HTTP/1.0 smuggling a GET", "POST /x HTTP/1.0\r\nHost: a\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n"},
		{"obs-fold hiding TE", "POST /x HTTP/1.1\r\nHost: a\r\nX-A: b\r\n Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\nabc"},
		{"bare LF ends the chunk size", "POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\r\n0\r\n\r\n"},
		{"bare CR in a value", "GET /x HTTP/1.1\r\nHost: a\r\nX-A: b\rTransfer-Encoding: chunked\r\n\r\n"},
		{"space before colon", "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length : 4\r\n\r\nabcd"},
	}
	for _, tc := range cases {
		before := hits.Load()
		line := rawExchange(t, addr, tc.raw)
		if !strings.HasPrefix(line, "HTTP/1.1 400") && !strings.HasPrefix(line, "HTTP/1.1 501") {
			t.Errorf("%s: answered %q, want 400", tc.name, line)
		}
		time.Sleep(50 * time.Millisecond)
		if hits.Load() != before {
			t.Errorf("%s: the request reached the upstream", tc.name)
		}
	}
}

// TestSlowlorisAndOversizedHeaders: a client that never finishes its
// headers is cut off at the read-header timeout; oversized headers get 431.
func TestSlowlorisAndOversizedHeaders(t *testing.T) {
	up, hits := countingUpstream(t)
	s := startServer(t, openConfig+"serve:\n  proxy: {host: 127.0.0.1, port: 0, timeout: {read_header: 300ms}}\n  api: {host: 127.0.0.1, port: 0}\n  prometheus: {host: 127.0.0.1, port: 0}\n",
		openRules(up.URL))
	c := handlertest.Dial(t, s.Addr("proxy"), 0)
	defer c.Close()
	io.WriteString(c, "GET /x HTTP/1.1\r\nHost: a\r\n")
	start := time.Now()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	// Trickle a header byte now and then; the server must hang up anyway.
	go func() {
		for i := 0; i < 50; i++ {
			if _, err := io.WriteString(c, "X"); err != nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	}()
	_, err := io.ReadAll(c)
	// The server hangs up (EOF or reset); only our own deadline is a failure.
	if elapsed := time.Since(start); errors.Is(err, os.ErrDeadlineExceeded) || elapsed > 5*time.Second {
		t.Errorf("slow headers: connection held for %v (err %v), want it closed after the 300ms read-header timeout", elapsed, err)
	}

	// Oversized headers (just over the 1 MiB limit, so the whole request
	// fits in the socket buffers): the server answers 431 and hangs up. The
	// API listener has the same header limit and, unlike this proxy
	// listener, no 300ms read-header timeout that a slow writer could hit.
	big := handlertest.Dial(t, s.Addr("api"), 0)
	defer big.Close()
	go io.WriteString(big, "GET /x HTTP/1.1\r\nHost: a\r\nX-Big: "+strings.Repeat("a", 1<<20+64<<10)+"\r\n\r\n")
	big.SetReadDeadline(time.Now().Add(5 * time.Second))
	line, _ := bufio.NewReader(big).ReadString('\n')
	if !strings.HasPrefix(line, "HTTP/1.1 431") {
		t.Errorf("1.06 MiB header: %q, want 431", line)
	}
	if hits.Load() != 0 {
		t.Error("a refused request reached the upstream")
	}
}

// selfSigned writes a certificate and key for 127.0.0.1 into dir.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "portcullis test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, IsCA: true, BasicConstraintsValid: true,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tpl, tpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// TestTLSListenersAndUpstream: the proxy and API listen with TLS from cert
// and key files, and an https upstream is trusted through
// serve.proxy.upstream_ca_file.
func TestTLSListenersAndUpstream(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, pool := selfSigned(t, dir)
	// The upstream serves the same certificate: trusting it takes the CA file.
	up := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "tls upstream for %s", r.Header.Get("X-User"))
	}))
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	up.TLS = &tls.Config{Certificates: []tls.Certificate{pair}}
	up.StartTLS()
	defer up.Close()

	cfg := openConfig + fmt.Sprintf(`serve:
  proxy:
    host: 127.0.0.1
    port: 0
    upstream_ca_file: %s
    tls: {cert: {path: %s}, key: {path: %s}}
  api:
    host: 127.0.0.1
    port: 0
    tls: {cert: {path: %s}, key: {path: %s}}
  prometheus: {host: 127.0.0.1, port: 0}
`, certFile, certFile, keyFile, certFile, keyFile)
	s := startServer(t, cfg, openRules(up.URL))
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	res, err := client.Get("https://" + s.Addr("proxy") + "/x")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || string(b) != "tls upstream for anonymous" {
		t.Errorf("https proxy → https upstream: %d %q", res.StatusCode, b)
	}
	res, err = client.Get("https://" + s.Addr("api") + "/health/alive")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Errorf("https API: %d", res.StatusCode)
	}
	// Without the CA, the same upstream is refused: 502, not a bypass.
	s2 := startServer(t, openConfig, openRules(up.URL))
	res, err = http.Get(s2.URL() + "/x")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusBadGateway {
		t.Errorf("untrusted upstream certificate: %d, want 502", res.StatusCode)
	}
}

// TestGracefulShutdownFinishesInFlightRequests: a request in flight when
// shutdown starts completes; new connections are refused.
func TestGracefulShutdownFinishesInFlightRequests(t *testing.T) {
	release := make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release
		io.WriteString(w, "finished")
	}))
	defer up.Close()
	s := startServer(t, openConfig, openRules(up.URL))
	done := servertest.FetchLater(s.URL() + "/slow")
	time.Sleep(200 * time.Millisecond)
	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		shut <- s.Stop(ctx)
	}()
	time.Sleep(100 * time.Millisecond)
	if _, err := net.DialTimeout("tcp", s.Addr("proxy"), time.Second); err == nil {
		t.Error("new connections accepted during shutdown")
	}
	close(release)
	if got := <-done; got != "200 finished" {
		t.Errorf("in-flight request: %q", got)
	}
	if err := <-shut; err != nil {
		t.Errorf("shutdown: %v", err)
	}
}

// TestUpstreamTimeoutIsConfigurable: serve.proxy.timeout.upstream bounds the
// wait for a silent upstream (a fault injector that accepts and never
// answers); the client gets 504.
func TestUpstreamTimeoutIsConfigurable(t *testing.T) {
	s := startServer(t, openConfig+"serve:\n  proxy: {host: 127.0.0.1, port: 0, timeout: {upstream: 200ms}}\n  api: {host: 127.0.0.1, port: 0}\n  prometheus: {host: 127.0.0.1, port: 0}\n",
		openRules(faultinject.HangingURL(t)))
	start := time.Now()
	if st := statusOf(t, s.URL()+"/x"); st != http.StatusGatewayTimeout {
		t.Errorf("silent upstream: %d, want 504", st)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("answered after %v; the configured upstream timeout is 200ms", d)
	}
}

// TestAPIListenerTimeouts: serve.api.timeout bounds the API's connections
// as serve.proxy.timeout does the proxy's. A body trickled to /decisions
// and an idle keep-alive are both cut off (before, both stayed open for as
// long as the client liked). The bounds checked are generous (10x the
// configured timeouts) for a loaded machine; the point is that the
// connection ends at all.
func TestAPIListenerTimeouts(t *testing.T) {
	up, _ := countingUpstream(t)
	s := startServer(t, openConfig+"serve:\n  proxy: {host: 127.0.0.1, port: 0}\n  api: {host: 127.0.0.1, port: 0, timeout: {read: 500ms, idle: 500ms}}\n  prometheus: {host: 127.0.0.1, port: 0}\n",
		openRules(up.URL))
	held := func(name string, c net.Conn, during func()) {
		t.Helper()
		start := time.Now()
		c.SetReadDeadline(time.Now().Add(15 * time.Second))
		go during()
		_, err := io.ReadAll(c)
		if elapsed := time.Since(start); errors.Is(err, os.ErrDeadlineExceeded) || elapsed > 5*time.Second {
			t.Errorf("%s: connection held for %v (err %v), want it closed after the 500ms timeout", name, elapsed, err)
		}
	}
	slow := handlertest.Dial(t, s.Addr("api"), 0)
	defer slow.Close()
	io.WriteString(slow, "POST /decisions/x HTTP/1.1\r\nHost: a\r\nContent-Length: 1000\r\n\r\n")
	held("slow body", slow, func() {
		for i := 0; i < 100; i++ {
			if _, err := io.WriteString(slow, "x"); err != nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
	idle := handlertest.Dial(t, s.Addr("api"), 0)
	defer idle.Close()
	io.WriteString(idle, "GET /health/alive HTTP/1.1\r\nHost: a\r\n\r\n")
	br := bufio.NewReader(idle)
	idle.SetReadDeadline(time.Now().Add(5 * time.Second))
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	start := time.Now()
	idle.SetReadDeadline(time.Now().Add(15 * time.Second))
	_, err = br.ReadByte()
	if elapsed := time.Since(start); errors.Is(err, os.ErrDeadlineExceeded) || elapsed > 5*time.Second {
		t.Errorf("idle keep-alive: held for %v (err %v), want it closed after the 500ms idle timeout", elapsed, err)
	}
}
