package servertest

import (
	"io"
	"net/http"
	"testing"
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
