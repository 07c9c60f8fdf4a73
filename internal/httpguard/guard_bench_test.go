package httpguard

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// browserRequest is a typical request of a browser to a proxied app.
var browserRequest = "GET /app/dashboard/items?page=2&sort=name HTTP/1.1\r\n" +
	"Host: app.example.com\r\n" +
	"User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36\r\n" +
	"Accept: text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8\r\n" +
	"Accept-Language: en-GB,en;q=0.9\r\n" +
	"Accept-Encoding: gzip, deflate, br, zstd\r\n" +
	"Referer: https://app.example.com/app/dashboard\r\n" +
	"Cookie: ory_kratos_session=MTcwMDAwMDAwMHxEdi1CQkFFQ180SUFBUkFCRUFBQVJfLUNBQUVHYzNSeWFXNW5EQThBRFhObGMzTnBiMjVmZEc5clpXNEdjM1J5YVc1bkRDSUFJRzVC; theme=dark\r\n" +
	"Sec-Fetch-Dest: document\r\nSec-Fetch-Mode: navigate\r\nSec-Fetch-Site: same-origin\r\n" +
	"Connection: keep-alive\r\n\r\n"

// BenchmarkGuardParse measures judging one request as it arrives, against
// net/http parsing the same request (http.ReadRequest) in the same loop:
// ratio is the guard's time over net/http's.
func BenchmarkGuardParse(b *testing.B) {
	for _, tc := range []struct{ name, req string }{
		{"browser", browserRequest},
		{"chunked", "POST /upload HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n" + strings.Repeat("400\r\n"+strings.Repeat("x", 1024)+"\r\n", 16) + "0\r\n\r\n"},
	} {
		b.Run(tc.name, func(b *testing.B) {
			data := []byte(tc.req)
			src := &sliceConn{step: 4096}
			c := NewConn(src)
			buf := make([]byte, 4096)
			br := bufio.NewReader(nil)
			var guard, std time.Duration
			b.ReportAllocs()
			b.SetBytes(int64(len(data)))
			for i := 0; i < b.N; i++ {
				t0 := time.Now()
				src.data = data
				for {
					if _, err := c.Read(buf); err != nil {
						break
					}
				}
				t1 := time.Now()
				br.Reset(bytes.NewReader(data))
				req, err := http.ReadRequest(br)
				if err != nil {
					b.Fatal(err)
				}
				io.Copy(io.Discard, req.Body)
				t2 := time.Now()
				guard += t1.Sub(t0)
				std += t2.Sub(t1)
			}
			b.ReportMetric(float64(guard.Nanoseconds())/float64(b.N), "guard-ns/req")
			b.ReportMetric(float64(std.Nanoseconds())/float64(b.N), "nethttp-ns/req")
			b.ReportMetric(float64(guard)/float64(std), "ratio")
		})
	}
}

// BenchmarkGuardServer measures keep-alive requests to a real loopback
// server with and without the guard, alternating, so both see the same
// machine: ratio is the guarded time over the plain one.
func BenchmarkGuardServer(b *testing.B) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	start := func(guarded bool) (string, func()) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		srv := &http.Server{Handler: h}
		if guarded {
			ln = Protect(srv, ln)
		}
		go srv.Serve(ln)
		return ln.Addr().String(), func() { srv.Close() }
	}
	plainAddr, stop1 := start(false)
	defer stop1()
	guardAddr, stop2 := start(true)
	defer stop2()
	dial := func(addr string) (net.Conn, *bufio.Reader) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			b.Fatal(err)
		}
		return c, bufio.NewReader(c)
	}
	pc, pr := dial(plainAddr)
	defer pc.Close()
	gc, gr := dial(guardAddr)
	defer gc.Close()
	req := []byte(browserRequest)
	roundTrip := func(c net.Conn, br *bufio.Reader) {
		if _, err := c.Write(req); err != nil {
			b.Fatal(err)
		}
		res, err := http.ReadResponse(br, nil)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
	}
	var plain, guard time.Duration
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		// Alternate which goes first: the server that just answered may
		// still be finishing its work when the other is asked.
		if i%2 == 0 {
			t0 := time.Now()
			roundTrip(pc, pr)
			t1 := time.Now()
			roundTrip(gc, gr)
			plain, guard = plain+t1.Sub(t0), guard+time.Since(t1)
		} else {
			t0 := time.Now()
			roundTrip(gc, gr)
			t1 := time.Now()
			roundTrip(pc, pr)
			guard, plain = guard+t1.Sub(t0), plain+time.Since(t1)
		}
	}
	b.ReportMetric(float64(plain.Nanoseconds())/float64(b.N), "plain-ns/req")
	b.ReportMetric(float64(guard.Nanoseconds())/float64(b.N), "guarded-ns/req")
	b.ReportMetric(float64(guard)/float64(plain), "ratio")
}
