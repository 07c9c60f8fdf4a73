package rules_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portcullis-proxy/portcullis/rules"
	"github.com/portcullis-proxy/portcullis/testsupport/handlertest"
)

// waitFor polls cond until it holds or the (generous) deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	handlertest.WaitFor(t, what, 10*time.Second, cond)
}

// loadAndWatch loads repo's rules, failing t if they do not load, and
// watches its locations until the test ends.
func loadAndWatch(t *testing.T, repo *rules.Repository) {
	t.Helper()
	if err := repo.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go repo.Watch(ctx)
}

type reloads struct {
	mu   sync.Mutex
	errs []error
	ok   int
}

func (r *reloads) record(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		r.errs = append(r.errs, err)
	} else {
		r.ok++
	}
}

func (r *reloads) failures() []error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]error(nil), r.errs...)
}

func TestRepositoryHotReloadKeepsLastGoodRules(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "access-rules.yml")
	write := func(doc string) {
		// Write then rename, as editors and config maps do.
		tmp := file + ".tmp"
		if err := os.WriteFile(tmp, []byte(doc), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, file); err != nil {
			t.Fatal(err)
		}
	}
	write(ruleDoc("v1", "http://app/v1", "GET"))
	var rec reloads
	repo := &rules.Repository{
		Locations:    []string{"file://" + file},
		Compiler:     compiler(t, rules.Regexp),
		PollInterval: 20 * time.Millisecond,
		OnReload:     rec.record,
	}
	loadAndWatch(t, repo)

	has := func(id string) bool { _, ok := repo.Current().Get(id); return ok }

	// A good change is applied.
	write(ruleDoc("v2", "http://app/v2", "GET"))
	waitFor(t, "v2 to load", func() bool { return has("v2") })
	if has("v1") {
		t.Error("v1 still served after it was removed")
	}

	// A broken change is ignored, with file:line, and v2 keeps serving.
	write(ruleDoc("v3", "http://app/v3", "GET") + handlertest.Rule{ID: "broken", URL: "http://app/<(", Authenticators: []string{"noop"}}.YAML())
	waitFor(t, "the broken change to be reported", func() bool { return len(rec.failures()) > 0 })
	if msg := rec.failures()[0].Error(); !strings.Contains(msg, file+":9:") {
		t.Errorf("reload error = %q, want it to name %s:9", msg, file)
	}
	if !has("v2") || has("v3") {
		t.Error("a broken rules file replaced the last good rule set")
	}
	// A file that disappears keeps the rules too.
	os.Remove(file)
	time.Sleep(100 * time.Millisecond)
	if !has("v2") {
		t.Error("a missing rules file dropped the last good rule set")
	}
	// And the next good change is applied.
	write(ruleDoc("v4", "http://app/v4", "GET"))
	waitFor(t, "v4 to load", func() bool { return has("v4") })
}

func TestRepositoryHTTPSourceFailuresKeepLastGood(t *testing.T) {
	var mode atomic.Value
	mode.Store("good")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch mode.Load().(string) {
		case "good":
			w.Write([]byte(ruleDoc("remote", "http://app/remote", "GET")))
		case "good2":
			w.Write([]byte(ruleDoc("remote2", "http://app/remote2", "GET")))
		case "500":
			http.Error(w, "boom", 500)
		case "garbage":
			w.Write([]byte("{{{ not rules"))
		case "huge":
			chunk := []byte(strings.Repeat("#", 1<<20) + "\n")
			for i := 0; i <= rules.MaxDocumentSize>>20; i++ {
				if _, err := w.Write(chunk); err != nil {
					return
				}
			}
		}
	}))
	defer srv.Close()
	var rec reloads
	repo := &rules.Repository{
		Locations:        []string{srv.URL + "/rules.yml"},
		Compiler:         compiler(t, rules.Regexp),
		PollInterval:     10 * time.Millisecond,
		HTTPPollInterval: 20 * time.Millisecond,
		OnReload:         rec.record,
	}
	loadAndWatch(t, repo)
	for _, m := range []string{"500", "garbage", "huge"} {
		before := len(rec.failures())
		mode.Store(m)
		waitFor(t, m+" to be reported", func() bool { return len(rec.failures()) > before })
		if _, ok := repo.Current().Get("remote"); !ok {
			t.Fatalf("after %s: last good rules dropped", m)
		}
	}
	mode.Store("good2")
	waitFor(t, "the remote change to load", func() bool { _, ok := repo.Current().Get("remote2"); return ok })
}

// TestRepositoryErrorsNeverShowCredentials: a repository URL's user info
// and query (where tokens travel) appear in no error — refused connection,
// error status, unparsable document — whatever net/http's own error says.
func TestRepositoryErrorsNeverShowCredentials(t *testing.T) {
	var mode atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch mode.Load().(string) {
		case "500":
			http.Error(w, "boom", 500)
		case "garbage":
			w.Write([]byte("- id: x\n  match: {url: 7\n"))
		}
	}))
	defer srv.Close()
	closed := httptest.NewServer(http.NotFoundHandler())
	closedURL := closed.URL
	closed.Close()
	secret := func(base string) string {
		return strings.Replace(base, "http://", "http://deploy:pa55word@", 1) + "/rules.yml?access_token=t0ken-42"
	}
	for _, tc := range []struct{ mode, loc string }{
		{"refused", secret(closedURL)},
		{"500", secret(srv.URL)},
		{"garbage", secret(srv.URL)},
	} {
		mode.Store(tc.mode)
		_, err := rules.LoadFiles(context.Background(), compiler(t, rules.Regexp), []string{tc.loc})
		if err == nil {
			t.Fatalf("%s: loaded", tc.mode)
		}
		for _, s := range []string{"pa55word", "t0ken-42", "deploy"} {
			if strings.Contains(err.Error(), s) {
				t.Errorf("%s: error shows %q: %v", tc.mode, s, err)
			}
		}
		if !strings.Contains(err.Error(), strings.TrimPrefix(srv.URL, "http://")[:9]) {
			t.Errorf("%s: error %q does not say which repository failed", tc.mode, err)
		}
	}
}
