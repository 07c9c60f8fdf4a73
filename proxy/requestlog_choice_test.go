package proxy

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/portcullis-proxy/portcullis/internal/logbuf"
	"github.com/portcullis-proxy/portcullis/internal/logfmt"
	"github.com/portcullis-proxy/portcullis/rules"
)

type nopHook struct{}

func (nopHook) Levels() []logrus.Level   { return logrus.AllLevels }
func (nopHook) Fire(*logrus.Entry) error { return nil }

// The request line skips logrus only for a logger whose formatter writes
// lines straight and whose output takes concurrent whole lines; every
// other logger (hooks, caller reporting, an entry, another formatter or
// output) gets it through logrus.
func TestRequestLogWritesStraightOnlyWhenSafe(t *testing.T) {
	file, err := os.Create(filepath.Join(t.TempDir(), "log"))
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	buffered, err := logbuf.New(file, logbuf.Options{Size: 4096, Flush: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer buffered.Close()
	logger := func(out io.Writer, f logrus.Formatter, change func(*logrus.Logger)) *logrus.Logger {
		l := logrus.New()
		l.Out, l.Formatter = out, f
		if change != nil {
			change(l)
		}
		return l
	}
	for _, tc := range []struct {
		name     string
		log      logrus.FieldLogger
		straight bool
	}{
		{"text to a file", logger(file, &logfmt.Text{}, nil), true},
		{"json to a file", logger(file, &logfmt.JSON{}, nil), true},
		{"text to log.buffer", logger(buffered, &logfmt.Text{}, nil), true},
		{"text to io.Discard", logger(io.Discard, &logfmt.Text{}, nil), true},
		{"logrus's formatter", logger(file, &logrus.TextFormatter{DisableColors: true, FullTimestamp: true}, nil), false},
		{"an output without a lock", logger(&bytes.Buffer{}, &logfmt.Text{}, nil), false},
		{"a hook", logger(file, &logfmt.Text{}, func(l *logrus.Logger) { l.AddHook(nopHook{}) }), false},
		{"caller reporting", logger(file, &logfmt.Text{}, func(l *logrus.Logger) { l.SetReportCaller(true) }), false},
		{"an entry", logger(file, &logfmt.Text{}, nil).WithField("component", "x"), false},
	} {
		rl := newRequestLog(tc.log, "request")
		if got := rl.out != nil; got != tc.straight {
			t.Errorf("%s: written straight = %v, want %v", tc.name, got, tc.straight)
		}
	}
	if rl := newDecisionPath(DecisionOptions{Rules: staticSource{}}, frontEnd{line: "request"}).lines; rl.out == nil {
		t.Error("the discarding default logger builds its lines through logrus")
	}
}

type staticSource struct{}

func (staticSource) Current() *rules.Set { return nil }
