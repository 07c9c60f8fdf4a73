package fetch

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/portcullis-proxy/portcullis/pipeline"
)

// Every attempt of a retried Post carries the whole body and the header
// as given, and the caller's header is left as it was.
func TestCallerPostRepeatsBodyAndHeader(t *testing.T) {
	type attempt struct {
		method, body, accept, auth string
	}
	var (
		mu   sync.Mutex
		seen []attempt
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		seen = append(seen, attempt{r.Method, string(b), r.Header.Get("Accept"), r.Header.Get("Authorization")})
		n := len(seen)
		mu.Unlock()
		if n < 3 {
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		w.Write([]byte("ok"))
	}))
	defer srv.Close()
	c := &Caller{Client: NewClient(ClientOptions{}), Timeout: 5 * time.Second, Retry: &Retry{MaxDelay: pipeline.Duration(time.Millisecond), GiveUpAfter: pipeline.Duration(time.Minute)}}
	header := http.Header{"Accept": {"application/json"}, "Authorization": {"Bearer t"}}
	res, err := c.Post(context.Background(), srv.URL, header, []byte(`{"subject":"alice"}`))
	if err != nil || res.StatusCode != http.StatusOK || string(res.Body) != "ok" {
		t.Fatalf("Post = %+v, %v; want 200 ok", res, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 3 {
		t.Fatalf("server saw %d attempts, want 3", len(seen))
	}
	want := attempt{http.MethodPost, `{"subject":"alice"}`, "application/json", "Bearer t"}
	for i, a := range seen {
		if a != want {
			t.Errorf("attempt %d = %+v, want %+v", i+1, a, want)
		}
	}
	if len(header) != 2 || header.Get("Accept") != "application/json" || header.Get("Authorization") != "Bearer t" {
		t.Errorf("the caller's header changed: %v", header)
	}
}

// A Post that is never answered well is an error once retries end.
func TestCallerPostGivesUp(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	c := &Caller{Client: NewClient(ClientOptions{}), Timeout: time.Second, Retry: &Retry{MaxDelay: pipeline.Duration(time.Millisecond), GiveUpAfter: pipeline.Duration(20 * time.Millisecond)}}
	if res, err := c.Post(context.Background(), srv.URL, nil, nil); err == nil {
		t.Fatalf("Post = %+v, want an error", res)
	}
}

func TestBasicAuthAsNetHTTP(t *testing.T) {
	for _, c := range [][2]string{{"client", "secret"}, {"", ""}, {"a%3Ab", "p:w d"}, {"ü", "€"}} {
		r, _ := http.NewRequest(http.MethodPost, "http://x/", nil)
		r.SetBasicAuth(c[0], c[1])
		if got, want := BasicAuth(c[0], c[1]), r.Header.Get("Authorization"); got != want {
			t.Errorf("BasicAuth(%q, %q) = %q, want %q", c[0], c[1], got, want)
		}
	}
}
