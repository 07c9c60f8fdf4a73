package fetch

import (
	"context"
	"encoding/base64"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portcullis-proxy/portcullis/pipeline"
)

func TestRead(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "doc.json")
	if err := os.WriteFile(path, []byte(`[1]`), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/missing" {
			http.NotFound(w, r)
			return
		}
		w.Write([]byte(`[2]`))
	}))
	defer srv.Close()

	tests := []struct {
		url     string
		want    string
		wantErr bool
	}{
		{"file://" + path, "[1]", false},
		{path, "[1]", false},
		{srv.URL + "/doc", "[2]", false},
		{srv.URL + "/missing", "", true},
		{"inline://" + base64.StdEncoding.EncodeToString([]byte("[3]")), "[3]", false},
		{"inline://" + base64.RawURLEncoding.EncodeToString([]byte("[4]>")), "[4]>", false},
		{"inline://%%%", "", true},
		{"ftp://host/x", "", true},
		{"file://" + filepath.Join(dir, "absent"), "", true},
	}
	for _, tt := range tests {
		got, err := Read(context.Background(), nil, tt.url)
		if (err != nil) != tt.wantErr || string(got) != tt.want {
			t.Errorf("Read(%q) = %q, %v; want %q, error %v", tt.url, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestRedactDropsCredentials(t *testing.T) {
	got := Redact("https://user:pass@host/p?token=secret")
	if strings.Contains(got, "pass") || strings.Contains(got, "secret") {
		t.Errorf("Redact kept a credential: %q", got)
	}
	if got := Redact("inline://c2VjcmV0"); strings.Contains(got, "c2VjcmV0") {
		t.Errorf("Redact kept an inline document: %q", got)
	}
}

func TestCallerRetriesThenSucceeds(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) < 3 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ok"))
	}))
	defer srv.Close()
	c := &Caller{Client: NewClient(ClientOptions{}), Timeout: 5 * time.Second, Retry: &Retry{MaxDelay: pipeline.Duration(time.Millisecond), GiveUpAfter: pipeline.Duration(time.Minute)}}
	res, err := c.Do(context.Background(), func(ctx context.Context) (*http.Request, error) {
		return http.NewRequestWithContext(ctx, "POST", srv.URL, strings.NewReader("body"))
	})
	if err != nil || res.StatusCode != 200 || string(res.Body) != "ok" {
		t.Fatalf("Do = %+v, %v; want 200 ok", res, err)
	}
	if n := calls.Load(); n != 3 {
		t.Errorf("server saw %d attempts, want 3", n)
	}
}

func TestCallerFailures(t *testing.T) {
	// A closed port: the listener is opened and closed so nothing answers.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + l.Addr().String()
	l.Close()

	// Fault injector: accepts connections and never answers.
	hang, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer hang.Close()
	go func() {
		for {
			c, err := hang.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()

	always502 := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadGateway)
	}))
	defer always502.Close()

	for _, target := range []string{closed, "http://" + hang.Addr().String(), always502.URL} {
		c := &Caller{Client: NewClient(ClientOptions{}), Timeout: 200 * time.Millisecond, Retry: &Retry{MaxDelay: pipeline.Duration(time.Millisecond), GiveUpAfter: pipeline.Duration(20 * time.Millisecond)}}
		_, err := c.Do(context.Background(), func(ctx context.Context) (*http.Request, error) {
			return http.NewRequestWithContext(ctx, "GET", target+"/?token=secret", nil)
		})
		if !errors.Is(err, ErrUnreachable) {
			t.Errorf("Do(%s) error = %v, want ErrUnreachable", target, err)
		}
		if err != nil && strings.Contains(err.Error(), "secret") {
			t.Errorf("error leaks the query string: %v", err)
		}
	}
}

func TestRetryBlockDefaultsAndStrictness(t *testing.T) {
	var r Retry
	if err := r.UnmarshalJSON([]byte(`{"max_delay":"5ms"}`)); err != nil {
		t.Fatal(err)
	}
	if r.MaxDelay.D() != 5*time.Millisecond || r.GiveUpAfter.D() != time.Second {
		t.Errorf("retry = %+v; want max_delay 5ms and default give_up_after 1s", r)
	}
	if err := r.UnmarshalJSON([]byte(`{"max_dleay":"5ms"}`)); err == nil {
		t.Error("an unknown key in retry must be an error")
	}
}

func TestPollAppliesOnlyChanges(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	docs := []string{"a", "a", "bad", "bad", "b", "stop"}
	var i int
	var applied []string
	var errs int
	Poll(ctx, time.Millisecond, []byte("a"), func(context.Context) ([]byte, error) {
		d := docs[i]
		i++
		if d == "stop" {
			cancel()
			return nil, errors.New("stopping")
		}
		return []byte(d), nil
	}, func(b []byte) error {
		if string(b) == "bad" {
			return errors.New("rejected")
		}
		applied = append(applied, string(b))
		return nil
	}, func(error) { errs++ })
	if strings.Join(applied, ",") != "b" {
		t.Errorf("applied %q, want only the change to b", applied)
	}
	if errs != 2 { // one for the rejected document (reported once), one for the failed load
		t.Errorf("reported %d errors, want 2", errs)
	}
}
