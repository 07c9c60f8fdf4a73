// Package logbuf is a buffered log writer in the manner of nginx's
// `access_log … buffer=size flush=time`: lines accumulate in memory and
// reach the underlying writer in one write when the buffer would overflow,
// when the oldest buffered line is flush old, and when the writer is
// flushed or closed. It takes the write system call off the request path
// (one write per buffer instead of one per line) at the price of lines
// arriving up to the flush interval late, and of losing the buffered lines
// if the process dies without closing the writer.
package logbuf

import (
	"io"
	"sync"
	"time"

	"github.com/portcullis-proxy/portcullis/pipeline"
)

// Options configure a Writer.
type Options struct {
	// Size is the buffer's capacity in bytes (> 0). A line that does not
	// fit in what is left flushes the buffer first; a line longer than
	// Size is written on its own, after what was buffered.
	Size int
	// Flush is how long a line may wait in the buffer (> 0).
	Flush time.Duration
	// OnError, when set, is called with an error of the underlying
	// writer (a log has nowhere else to report it). It must not write to
	// this Writer.
	OnError func(error)
}

// ErrOptions is returned by New for a size or interval that is not positive.
const ErrOptions pipeline.Sentinel = "logbuf: size and flush interval must be positive"

// Writer is a buffered, line-preserving io.Writer, safe for concurrent
// use. Each Write is kept whole: its bytes are never split between two
// writes to the underlying writer, so a caller that writes one line per
// call (as logrus does) never sees a line torn. Lines keep the order of
// the Write calls.
type Writer struct {
	out     io.Writer
	flush   time.Duration
	onError func(error)

	mu     sync.Mutex
	buf    []byte
	timer  *time.Timer // armed while buf holds lines
	armed  bool
	closed bool // after Close every Write goes straight through
}

// New returns a Writer buffering for out. No goroutine runs while the
// buffer is empty: the flush timer is armed by the first line buffered.
func New(out io.Writer, o Options) (*Writer, error) {
	if o.Size <= 0 || o.Flush <= 0 {
		return nil, ErrOptions
	}
	w := &Writer{out: out, flush: o.Flush, onError: o.OnError, buf: make([]byte, 0, o.Size)}
	w.timer = time.AfterFunc(time.Hour, w.onTimer)
	w.timer.Stop()
	return w, nil
}

// Write buffers p (one whole line, or several) and always reports
// len(p) written unless the Writer is closed and out fails.
func (w *Writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return w.out.Write(p)
	}
	if len(w.buf)+len(p) > cap(w.buf) {
		w.flushLocked()
		if len(p) > cap(w.buf) {
			w.report(writeAll(w.out, p))
			return len(p), nil
		}
	}
	w.buf = append(w.buf, p...)
	if !w.armed {
		w.armed = true
		w.timer.Reset(w.flush)
	}
	return len(p), nil
}

// Flush writes what is buffered now and returns the underlying writer's
// error, if any.
func (w *Writer) Flush() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.flushLocked()
}

// Close flushes the buffer and stops the timer; later Writes go straight
// to the underlying writer, so a line logged after Close is not lost.
// It does not close the underlying writer.
func (w *Writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	err := w.flushLocked()
	w.closed = true
	w.timer.Stop()
	return err
}

func (w *Writer) onTimer() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.armed = false
	w.flushLocked()
}

// flushLocked writes the buffer out in one write; w.mu is held.
func (w *Writer) flushLocked() error {
	if w.armed {
		w.armed = false
		w.timer.Stop()
	}
	if len(w.buf) == 0 {
		return nil
	}
	err := writeAll(w.out, w.buf)
	w.buf = w.buf[:0]
	w.report(err)
	return err
}

func (w *Writer) report(err error) {
	if err != nil && w.onError != nil {
		w.onError(err)
	}
}

// writeAll writes b, going on after a short write.
func writeAll(out io.Writer, b []byte) error {
	for len(b) > 0 {
		n, err := out.Write(b)
		if err != nil {
			return err
		}
		if n == 0 {
			return io.ErrShortWrite
		}
		b = b[n:]
	}
	return nil
}
