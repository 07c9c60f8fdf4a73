package rules_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"

	"github.com/portcullis-proxy/portcullis/rules"
)

// Overlapping rules load (as Oathkeeper's do) and each proven overlap is
// one warning, on the first load and on every hot reload.
func TestRepositoryWarnsOfOverlapsAndKeepsLoading(t *testing.T) {
	file := filepath.Join(t.TempDir(), "access-rules.yml")
	write := func(doc string) {
		if err := os.WriteFile(file+".tmp", []byte(doc), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(file+".tmp", file); err != nil {
			t.Fatal(err)
		}
	}
	write(ruleDoc("a", "http://app/<.*>", "GET") + ruleDoc("b", "http://app/api/<.*>", "GET"))
	log, hook := logtest.NewNullLogger()
	repo := &rules.Repository{
		Locations:    []string{"file://" + file},
		Compiler:     compiler(t, rules.Regexp),
		Log:          log,
		PollInterval: 20 * time.Millisecond,
	}
	if err := repo.Load(context.Background()); err != nil {
		t.Fatalf("overlapping rules did not load: %v", err)
	}
	warnings := func() []string {
		var out []string
		for _, e := range hook.AllEntries() {
			if e.Level == logrus.WarnLevel {
				out = append(out, e.Message)
			}
		}
		return out
	}
	want := `rule "b" overlaps rule "a" (` + file + `:1): both match GET http://app/api/ — requests matching both get 500`
	if w := warnings(); len(w) != 1 || !strings.Contains(w[0], want) {
		t.Fatalf("warnings after load = %q, want one containing %q", w, want)
	}
	if repo.Current().Len() != 2 {
		t.Fatalf("serving %d rules, want 2", repo.Current().Len())
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go repo.Watch(ctx)
	write(ruleDoc("a", "http://app/<[a-z]+>", "GET") + ruleDoc("b", "http://app/<[a-c]+>", "GET") + ruleDoc("c", "http://app/<[0-9]+>", "GET"))
	waitFor(t, "the reload", func() bool { _, ok := repo.Current().Get("c"); return ok })
	// The set is swapped in before its warnings are logged.
	waitFor(t, "the reload's warning", func() bool { return len(warnings()) >= 2 })
	w := warnings()
	if len(w) != 2 || !strings.Contains(w[1], `rule "b" overlaps rule "a"`) || !strings.Contains(w[1], "GET http://app/a ") {
		t.Errorf("warnings after reload = %q", w)
	}
}
