package logfmt

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
)

// A line logged through Slog is byte for byte the line logrus writes for
// the same message, level, fields and error.
func TestSlogWritesLogrusLines(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	newLogger := func(buf *bytes.Buffer) *logrus.Logger {
		l := logrus.New()
		l.Out = buf
		l.SetFormatter(&JSON{})
		l.SetLevel(logrus.InfoLevel)
		return l
	}
	cause := errors.New("key set unreachable")
	cases := []struct {
		name string
		slog func(*slog.Logger)
		lrus func(*logrus.Logger)
	}{
		{"warn with error",
			func(l *slog.Logger) { l.Warn("keys not available", "error", cause) },
			func(l *logrus.Logger) { l.WithTime(at).WithError(cause).Warn("keys not available") }},
		{"info with a field",
			func(l *slog.Logger) { l.Info("ladon policies loaded", "policies", 3) },
			func(l *logrus.Logger) { l.WithTime(at).WithField("policies", int64(3)).Info("ladon policies loaded") }},
		{"error, attrs and a group",
			func(l *slog.Logger) { l.With("handler", "ladon").WithGroup("set").Error("not reloaded", "size", "big") },
			func(l *logrus.Logger) {
				l.WithTime(at).WithFields(logrus.Fields{"handler": "ladon", "set.size": "big"}).Error("not reloaded")
			}},
		{"debug below the level",
			func(l *slog.Logger) { l.Debug("hidden") },
			func(l *logrus.Logger) { l.WithTime(at).Debug("hidden") }},
	}
	for _, tc := range cases {
		var got, want bytes.Buffer
		sl := Slog(newLogger(&got))
		tc.slog(slog.New(fixedTime{sl.Handler(), at}))
		tc.lrus(newLogger(&want))
		if got.String() != want.String() {
			t.Errorf("%s:\n got %q\nwant %q", tc.name, got.String(), want.String())
		}
	}
}

// fixedTime stamps every record with one time, so lines compare.
type fixedTime struct {
	slog.Handler
	at time.Time
}

func (f fixedTime) Handle(ctx context.Context, r slog.Record) error {
	r.Time = f.at
	return f.Handler.Handle(ctx, r)
}

func (f fixedTime) WithAttrs(as []slog.Attr) slog.Handler {
	return fixedTime{f.Handler.WithAttrs(as), f.at}
}

func (f fixedTime) WithGroup(name string) slog.Handler {
	return fixedTime{f.Handler.WithGroup(name), f.at}
}
