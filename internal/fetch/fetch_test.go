package fetch

import (
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-proxy/portcullis/pipeline"
	"github.com/portcullis-proxy/portcullis/testsupport/faultinject"
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
	api := faultinject.FlakyAPI(t, 2, http.StatusServiceUnavailable, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("ok"))
	}))
	c := &Caller{Client: NewClient(ClientOptions{}), Timeout: 5 * time.Second, Retry: &Retry{MaxDelay: pipeline.Duration(time.Millisecond), GiveUpAfter: pipeline.Duration(time.Minute)}}
	res, err := c.Do(context.Background(), func(ctx context.Context) (*http.Request, error) {
		return http.NewRequestWithContext(ctx, "POST", api.URL, strings.NewReader("body"))
	})
	if err != nil || res.StatusCode != 200 || string(res.Body) != "ok" {
		t.Fatalf("Do = %+v, %v; want 200 ok", res, err)
	}
	if n := api.Attempts(); n != 3 {
		t.Errorf("server saw %d attempts, want 3", n)
	}
}

func TestCallerFailures(t *testing.T) {
	// A closed port: nothing answers.
	closed := faultinject.RefusingURL(t)

	always502 := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadGateway)
	}))
	defer always502.Close()

	for _, target := range []string{closed, faultinject.HangingURL(t), always502.URL} {
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

// TestReadAllDirectory: a directory yields its .json/.yaml/.yml files in
// name order, each named by its path; other files, hidden files and
// subdirectories are left out.
func TestReadAllDirectory(t *testing.T) {
	dir := t.TempDir()
	for name, body := range map[string]string{"b.yaml": "b", "a.json": "a", "c.YML": "c", "notes.txt": "x", ".hidden.yml": "h"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "sub.yml"), 0o700); err != nil {
		t.Fatal(err)
	}
	for _, loc := range []string{dir, "file://" + dir} {
		docs, err := ReadAll(context.Background(), nil, loc)
		if err != nil {
			t.Fatalf("ReadAll(%s): %v", loc, err)
		}
		var got []string
		for _, d := range docs {
			got = append(got, filepath.Base(d.Name)+"="+string(d.Data))
		}
		if want := "a.json=a,b.yaml=b,c.YML=c"; strings.Join(got, ",") != want {
			t.Errorf("ReadAll(%s) = %s, want %s", loc, strings.Join(got, ","), want)
		}
	}
	docs, err := ReadAll(context.Background(), nil, "inline://"+base64.StdEncoding.EncodeToString([]byte("[]")))
	if err != nil || len(docs) != 1 || docs[0].Name != "inline" || string(docs[0].Data) != "[]" {
		t.Errorf("ReadAll(inline) = %+v, %v; want one document named inline", docs, err)
	}
}

// TestEveryErrorIsRedacted: whatever fails — a bad inline document, an
// unknown scheme, a refused connection, an error status, a document over
// the limit — the error is a *fetch.Error whose message names the source
// without its user info or query.
func TestEveryErrorIsRedacted(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/500":
			http.Error(w, "boom", http.StatusInternalServerError)
		case "/huge":
			chunk := make([]byte, 1<<20)
			for i := 0; i <= MaxDocumentBytes>>20; i++ {
				if _, err := w.Write(chunk); err != nil {
					return
				}
			}
		}
	}))
	defer srv.Close()
	refused := faultinject.RefusingURL(t)
	huge := filepath.Join(t.TempDir(), "huge.yml")
	if err := os.WriteFile(huge, make([]byte, MaxDocumentBytes+1), 0o600); err != nil {
		t.Fatal(err)
	}
	secret := func(base, path string) string {
		return strings.Replace(base, "http://", "http://deploy:pa55word@", 1) + path + "?access_token=t0ken-42"
	}
	cases := []struct{ loc, want string }{
		{secret(srv.URL, "/500"), "answered 500 Internal Server Error"},
		{secret(srv.URL, "/huge"), "larger than"},
		{secret(refused, "/rules.yml"), "connection refused"},
		{"ftp://deploy:pa55word@host/x?access_token=t0ken-42", "unsupported URL scheme"},
		{"inline://%%%", "not valid base64"},
		{huge, "larger than"},
		{filepath.Join(t.TempDir(), "absent.yml"), "no such file"},
	}
	for _, tc := range cases {
		for name, read := range map[string]func() error{
			"Read":    func() error { _, err := Read(context.Background(), nil, tc.loc); return err },
			"ReadAll": func() error { _, err := ReadAll(context.Background(), nil, tc.loc); return err },
		} {
			err := read()
			var fe *Error
			if !errors.As(err, &fe) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%s(%s) = %v (%T), want a *fetch.Error saying %q", name, tc.loc, err, err, tc.want)
				continue
			}
			if fe.Location != Redact(tc.loc) && fe.Location != tc.loc {
				t.Errorf("%s(%s): Location %q", name, tc.loc, fe.Location)
			}
			for _, s := range []string{"pa55word", "t0ken-42", "deploy", "%%%"} {
				if strings.Contains(err.Error(), s) {
					t.Errorf("%s(%s): error shows %q: %v", name, tc.loc, s, err)
				}
			}
		}
	}
	if err := CheckURL("ftp://deploy:pa55word@host/"); err == nil || strings.Contains(err.Error(), "pa55word") {
		t.Errorf("CheckURL(ftp with password) = %v", err)
	}
}
