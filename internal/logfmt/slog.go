package logfmt

import (
	"context"
	"log/slog"
	"maps"

	"github.com/sirupsen/logrus"
)

// Slog returns a [slog.Logger] whose records are written by l, so code
// that logs through the standard library's interface (the handlers, via
// pipeline.Deps) writes the process's lines in the process's format.
// Levels map to logrus's (below Info is Debug, then Info, Warn, Error);
// attributes become fields, a group's keys prefixed with "group."; an
// "error" attribute holding an error is the field logrus's WithError sets.
// A record below l's level costs only the level check.
func Slog(l *logrus.Logger) *slog.Logger { return slog.New(&logrusHandler{l: l}) }

// logrusHandler is the [slog.Handler] of [Slog].
type logrusHandler struct {
	l      *logrus.Logger
	fields logrus.Fields // from WithAttrs, already prefixed
	prefix string        // from WithGroup: "a.b."
}

func (h *logrusHandler) Enabled(_ context.Context, lv slog.Level) bool {
	return h.l.IsLevelEnabled(logrusLevel(lv))
}

func (h *logrusHandler) Handle(_ context.Context, r slog.Record) error {
	fields := make(logrus.Fields, len(h.fields)+r.NumAttrs())
	maps.Copy(fields, h.fields)
	r.Attrs(func(a slog.Attr) bool {
		addAttr(fields, h.prefix, a)
		return true
	})
	e := h.l.WithFields(fields)
	if !r.Time.IsZero() {
		e = e.WithTime(r.Time)
	}
	e.Log(logrusLevel(r.Level), r.Message)
	return nil
}

func (h *logrusHandler) WithAttrs(as []slog.Attr) slog.Handler {
	fields := make(logrus.Fields, len(h.fields)+len(as))
	maps.Copy(fields, h.fields)
	for _, a := range as {
		addAttr(fields, h.prefix, a)
	}
	return &logrusHandler{l: h.l, fields: fields, prefix: h.prefix}
}

func (h *logrusHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	return &logrusHandler{l: h.l, fields: h.fields, prefix: h.prefix + name + "."}
}

// addAttr sets a's field (a group's fields, each prefixed) in fields.
func addAttr(fields logrus.Fields, prefix string, a slog.Attr) {
	v := a.Value.Resolve()
	if v.Kind() == slog.KindGroup {
		p := prefix
		if a.Key != "" {
			p += a.Key + "."
		}
		for _, g := range v.Group() {
			addAttr(fields, p, g)
		}
		return
	}
	if a.Key == "" {
		return
	}
	fields[prefix+a.Key] = v.Any()
}

func logrusLevel(lv slog.Level) logrus.Level {
	switch {
	case lv < slog.LevelInfo:
		return logrus.DebugLevel
	case lv < slog.LevelWarn:
		return logrus.InfoLevel
	case lv < slog.LevelError:
		return logrus.WarnLevel
	default:
		return logrus.ErrorLevel
	}
}
