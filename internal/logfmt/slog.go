package logfmt

import (
	"context"
	"log/slog"
	"maps"

	"github.com/sirupsen/logrus"
)

// Slog returns a *slog.Logger that writes through l: its level, formatter,
// hooks and output decide, as for l's own lines. Attributes become logrus
// fields of the same name (a group's are prefixed "group."), so
// log.Error(msg, "error", err) writes what l.WithError(err).Error(msg)
// does. The shared stage types (pipeline.Deps) carry a *slog.Logger so
// that they need only the standard library; the process logs with logrus,
// wired here at the edge.
func Slog(l *logrus.Logger) *slog.Logger {
	return slog.New(&logrusHandler{log: l})
}

// logrusHandler is a slog.Handler over a logrus logger.
type logrusHandler struct {
	log    *logrus.Logger
	fields logrus.Fields // from WithAttrs, keys already prefixed
	prefix string        // "a.b." inside WithGroup("a").WithGroup("b")
}

func (h *logrusHandler) Enabled(_ context.Context, level slog.Level) bool {
	return h.log.IsLevelEnabled(logrusLevel(level))
}

func (h *logrusHandler) Handle(_ context.Context, r slog.Record) error {
	fields := make(logrus.Fields, len(h.fields)+r.NumAttrs())
	maps.Copy(fields, h.fields)
	r.Attrs(func(a slog.Attr) bool {
		addAttr(fields, h.prefix, a)
		return true
	})
	e := h.log.WithFields(fields)
	if !r.Time.IsZero() {
		e = e.WithTime(r.Time)
	}
	e.Log(logrusLevel(r.Level), r.Message)
	return nil
}

func (h *logrusHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	fields := make(logrus.Fields, len(h.fields)+len(attrs))
	maps.Copy(fields, h.fields)
	for _, a := range attrs {
		addAttr(fields, h.prefix, a)
	}
	return &logrusHandler{log: h.log, fields: fields, prefix: h.prefix}
}

func (h *logrusHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	return &logrusHandler{log: h.log, fields: h.fields, prefix: h.prefix + name + "."}
}

// addAttr stores a as a field, a group's members each under its key.
func addAttr(fields logrus.Fields, prefix string, a slog.Attr) {
	a.Value = a.Value.Resolve()
	if a.Equal(slog.Attr{}) {
		return
	}
	if a.Value.Kind() == slog.KindGroup {
		if a.Key != "" {
			prefix += a.Key + "."
		}
		for _, g := range a.Value.Group() {
			addAttr(fields, prefix, g)
		}
		return
	}
	fields[prefix+a.Key] = a.Value.Any()
}

// logrusLevel maps slog's levels onto logrus's: below Debug is Trace.
func logrusLevel(l slog.Level) logrus.Level {
	switch {
	case l >= slog.LevelError:
		return logrus.ErrorLevel
	case l >= slog.LevelWarn:
		return logrus.WarnLevel
	case l >= slog.LevelInfo:
		return logrus.InfoLevel
	case l >= slog.LevelDebug:
		return logrus.DebugLevel
	default:
		return logrus.TraceLevel
	}
}
