package demoapp

import (
	"bufio"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestClockEventsTick(t *testing.T) {
	srv := httptest.NewServer(&clockEvents{log: slog.New(slog.NewTextHandler(io.Discard, nil)), tick: 20 * time.Millisecond})
	defer srv.Close()
	req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
	req.Header.Set("X-User-Email", "ada@example.com")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if ct := res.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("Content-Type %q", ct)
	}
	sc := bufio.NewScanner(res.Body)
	var ticks []string
	for len(ticks) < 3 && sc.Scan() {
		if d, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			ticks = append(ticks, d)
		}
	}
	if len(ticks) != 3 {
		t.Fatalf("ticks %q, err %v", ticks, sc.Err())
	}
	for _, tk := range ticks {
		ts, who, _ := strings.Cut(tk, " ")
		if _, err := time.Parse(time.RFC3339, ts); err != nil || who != "ada@example.com" {
			t.Errorf("tick %q: want an RFC 3339 time and the identity", tk)
		}
	}
}
