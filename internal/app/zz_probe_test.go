package app_test

import (
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

func TestZZProbe(t *testing.T) {
	up, hits := countingUpstream(t)
	s := startServer(t, openConfig, strings.ReplaceAll(openRules, "UPSTREAM", up.URL))
	addr := s.Addr("proxy")
	cases := []struct{ name, raw string }{
		{"CL+TE", "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"},
		{"TE+CL", "POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n"},
		{"bare LF chunk", "POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\r\n0\r\n\r\n"},
		{"http10 TE keepalive", "POST /x HTTP/1.0\r\nHost: a\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n2d\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n\r\n0\r\n\r\n"},
		{"obs-fold TE", "POST /x HTTP/1.1\r\nHost: a\r\nX-A: b\r\n Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\nabc"},
	}
	for _, tc := range cases {
		before := hits.Load()
		c, _ := net.Dial("tcp", addr)
		c.SetDeadline(time.Now().Add(3 * time.Second))
		io.WriteString(c, tc.raw)
		b, err := io.ReadAll(c)
		c.Close()
		time.Sleep(50 * time.Millisecond)
		t.Logf("%s: hits +%d err=%v\n%s", tc.name, hits.Load()-before, err, b)
	}
}
