package servertest

import (
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"
)

// Fetch sends req with [http.DefaultClient] (redirects followed) and
// returns the answer's status and body. A request that gets no answer
// fails tb; a body cut short is returned as far as it was read.
func Fetch(tb testing.TB, req *http.Request) (status int, body string) {
	tb.Helper()
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// FetchLater sends a GET of url on a goroutine of its own, for a request
// that is to be in flight while the test goes on, and returns where its
// outcome arrives once: the status and the body read to the end
// ("200 finished"), or the error's text when no answer came or the body
// was cut short. The request is given up after a minute, so the goroutine
// always ends.
func FetchLater(url string) <-chan string {
	out := make(chan string, 1)
	go func() {
		res, err := (&http.Client{Timeout: time.Minute}).Get(url)
		if err != nil {
			out <- err.Error()
			return
		}
		b, err := io.ReadAll(res.Body)
		res.Body.Close()
		if err != nil {
			out <- fmt.Sprintf("%d %s: %v", res.StatusCode, b, err)
			return
		}
		out <- fmt.Sprintf("%d %s", res.StatusCode, b)
	}()
	return out
}
