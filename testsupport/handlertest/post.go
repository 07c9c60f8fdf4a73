package handlertest

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// PostJSON POSTs body to u as application/json, with header h (nil for
// none), and decodes a 200 answer into v. It returns the response, its
// body read and closed; an answer of another status is left undecoded, for
// the test to check the status.
func PostJSON(tb testing.TB, u string, h http.Header, body string, v any) *http.Response {
	tb.Helper()
	req, err := http.NewRequest(http.MethodPost, u, strings.NewReader(body))
	if err != nil {
		tb.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for k, vs := range h {
		req.Header[k] = vs
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode == http.StatusOK {
		if err := json.NewDecoder(res.Body).Decode(v); err != nil {
			tb.Fatalf("POST %s: %v", u, err)
		}
	}
	return res
}
