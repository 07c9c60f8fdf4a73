package proxy_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/sirupsen/logrus"

	"github.com/portcullis-proxy/portcullis/proxy"
)

// lockedBuffer is a log sink safe for the server's goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// The request line is written at info level, by the proxy and by the
// decision API alike, whether the handler was given a Logger or an Entry;
// above info nothing is written.
func TestRequestLogFollowsLevel(t *testing.T) {
	up := echoUpstream(t)
	set := ruleSet(t, strings.ReplaceAll(benchRule, "UPSTREAM", up.URL))
	for _, tc := range []struct {
		name  string
		level logrus.Level
		entry bool
		want  bool
	}{
		{"logger at info", logrus.InfoLevel, false, true},
		{"entry at debug", logrus.DebugLevel, true, true},
		{"logger at warn", logrus.WarnLevel, false, false},
		{"entry at error", logrus.ErrorLevel, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out lockedBuffer
			l := logrus.New()
			l.Out = &out
			l.SetLevel(tc.level)
			var fl logrus.FieldLogger = l
			if tc.entry {
				fl = l.WithField("component", "test")
			}
			front := httptest.NewServer((&proxy.Handler{Rules: staticRules{set}, Log: fl}).Init())
			defer front.Close()
			api := httptest.NewServer((&proxy.API{Rules: staticRules{set}, Log: fl}).Handler())
			defer api.Close()
			for _, u := range []string{front.URL + "/anon/items/1", api.URL + "/decisions/anon/items/1"} {
				res, err := http.Get(u)
				if err != nil {
					t.Fatal(err)
				}
				res.Body.Close()
				if res.StatusCode != http.StatusOK {
					t.Fatalf("%s: status %d", u, res.StatusCode)
				}
			}
			got := out.String()
			for _, msg := range []string{"msg=request", "msg=decision"} {
				if has := strings.Contains(got, msg) && strings.Contains(got, "rule=anon"); has != tc.want {
					t.Errorf("%s logged = %v, want %v; log:\n%s", msg, has, tc.want, got)
				}
			}
		})
	}
}
