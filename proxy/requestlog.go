package proxy

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/portcullis-proxy/portcullis/internal/logbuf"
	"github.com/portcullis-proxy/portcullis/internal/logfmt"
)

// requestLog writes a front end's request line: one line per request at
// info level, its fields as [exchange.finish] lists them.
//
// When the logger is a *logrus.Logger whose formatter is the server's
// text or JSON format ([logfmt.Text], [logfmt.JSON]), with no
// hooks and no caller reporting, and whose output is safe for concurrent
// whole-line writes (a *logbuf.Writer, an *os.File, io.Discard), the line
// is formatted straight from its fields into a pooled buffer and written
// to the output in one Write: the same bytes logrus writes for the same
// fields, without its entry, its field maps and its formatter's
// reflection. Any other logger gets the line through logrus. The logger's
// formatter, hooks and output are read once, when the front end is built.
type requestLog struct {
	log logrus.FieldLogger
	msg string
	// msgArg is msg as logrus's Info takes it, boxed once.
	msgArg any
	// text or json, and out, are set when lines are written straight to
	// out. (Concrete types: through the LineFormatter interface the
	// line's fields would leave the stack.)
	text *logfmt.Text
	json *logfmt.JSON
	out  io.Writer
}

// newRequestLog returns the request log of lines msg on l.
func newRequestLog(l logrus.FieldLogger, msg string) requestLog {
	rl := requestLog{log: l, msg: msg, msgArg: msg}
	lg, ok := l.(*logrus.Logger)
	if !ok || lg.ReportCaller || len(lg.Hooks[logrus.InfoLevel]) > 0 || !wholeLines(lg.Out) {
		return rl
	}
	switch f := lg.Formatter.(type) {
	case *logfmt.Text:
		rl.text, rl.out = f, lg.Out
	case *logfmt.JSON:
		rl.json, rl.out = f, lg.Out
	}
	return rl
}

// wholeLines reports whether concurrent Writes to w each land whole and
// unmixed, so that a line may be written without logrus's lock: a
// logbuf.Writer holds its own lock, an *os.File's Write holds the file's
// write lock until every byte is written.
func wholeLines(w io.Writer) bool {
	switch w.(type) {
	case *logbuf.Writer, *os.File, discard:
		return true
	}
	return w == io.Discard
}

// enabled reports whether the line would be written.
func (rl *requestLog) enabled() bool { return infoEnabled(rl.log) }

// lineBufs are the buffers request lines are formatted into.
var lineBufs = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// write writes the line of fields, timed at now.
func (rl *requestLog) write(now time.Time, fields []logfmt.Field) {
	if rl.out == nil {
		f := make(logrus.Fields, len(fields))
		for _, fl := range fields {
			f[fl.Key] = fl.Value()
		}
		logEntry(rl.log, f).Info(rl.msgArg)
		return
	}
	bp := lineBufs.Get().(*[]byte)
	var b []byte
	if rl.text != nil {
		b = rl.text.AppendLine((*bp)[:0], now, logrus.InfoLevel, rl.msg, fields)
	} else {
		b = rl.json.AppendLine((*bp)[:0], now, logrus.InfoLevel, rl.msg, fields)
	}
	if _, err := rl.out.Write(b); err != nil {
		// What logrus does with a failed write: the log has nowhere
		// else to say it.
		fmt.Fprintln(os.Stderr, "Failed to write to log:", err)
	}
	if cap(b) <= 64<<10 {
		*bp = b
		lineBufs.Put(bp)
	}
}

// logEntry returns an entry with the fields f for l. A *logrus.Logger's
// entry takes f as it is, sparing the copy WithFields makes of a map that
// is built for this one line.
func logEntry(l logrus.FieldLogger, f logrus.Fields) *logrus.Entry {
	if lg, ok := l.(*logrus.Logger); ok {
		return &logrus.Entry{Logger: lg, Data: f}
	}
	return l.WithFields(f)
}

// infoEnabled reports whether l writes info lines, so that the request
// line is not built for a logger that drops it.
func infoEnabled(l logrus.FieldLogger) bool {
	switch l := l.(type) {
	case *logrus.Logger:
		return l.IsLevelEnabled(logrus.InfoLevel)
	case *logrus.Entry:
		return l.Logger.IsLevelEnabled(logrus.InfoLevel)
	}
	return true
}

// discard is the output of the logger a front end makes when given none.
type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
