package logfmt

import (
	"bytes"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"
)

// TestSlogWritesWhatLogrusWrites: a line logged through Slog is the line
// logrus writes for the same message and fields, byte for byte.
func TestSlogWritesWhatLogrusWrites(t *testing.T) {
	var viaSlog, direct bytes.Buffer
	newLogger := func(out *bytes.Buffer) *logrus.Logger {
		l := logrus.New()
		l.Out, l.Formatter = out, &JSON{}
		return l
	}
	err := errors.New("refused")
	Slog(newLogger(&viaSlog)).With("policies", 3).Error("not reloaded", "error", err)
	newLogger(&direct).WithField("policies", 3).WithError(err).Error("not reloaded")
	strip := func(b []byte) string { // the time differs
		line := string(b)
		if i := bytes.Index(b, []byte(`"time":"`)); i >= 0 {
			line = line[:i]
		}
		return line
	}
	if strip(viaSlog.Bytes()) != strip(direct.Bytes()) {
		t.Errorf("through Slog:\n%s\ndirect:\n%s", viaSlog.String(), direct.String())
	}
}

func TestSlogLevelsFieldsAndGroups(t *testing.T) {
	l, hook := logtest.NewNullLogger()
	l.SetLevel(logrus.InfoLevel)
	log := Slog(l)
	log.Debug("hidden")
	if log.Enabled(t.Context(), slog.LevelDebug) || len(hook.AllEntries()) != 0 {
		t.Fatalf("a debug line passed an info logger: %v", hook.AllEntries())
	}
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	r := slog.NewRecord(at, slog.LevelWarn, "keys not available", 0)
	r.AddAttrs(slog.Int("n", 2), slog.Group("set", slog.String("url", "https://idp/keys")))
	if err := log.WithGroup("jwks").Handler().Handle(t.Context(), r); err != nil {
		t.Fatal(err)
	}
	e := hook.LastEntry()
	if e == nil || e.Level != logrus.WarnLevel || e.Message != "keys not available" || !e.Time.Equal(at) {
		t.Fatalf("entry = %+v", e)
	}
	if e.Data["jwks.n"] != int64(2) || e.Data["jwks.set.url"] != "https://idp/keys" {
		t.Errorf("fields = %v", e.Data)
	}
	for level, want := range map[slog.Level]logrus.Level{slog.LevelError: logrus.ErrorLevel, slog.LevelInfo: logrus.InfoLevel, slog.LevelDebug - 4: logrus.TraceLevel} {
		if got := logrusLevel(level); got != want {
			t.Errorf("logrusLevel(%v) = %v, want %v", level, got, want)
		}
	}
}
