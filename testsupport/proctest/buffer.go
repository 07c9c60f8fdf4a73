package proctest

import "sync"

// Buffer collects what a child process (or a logger) writes, from any
// number of goroutines. The zero value keeps everything; [NewBuffer] keeps
// only the tail.
type Buffer struct {
	mu    sync.Mutex
	limit int
	b     []byte
}

// NewBuffer returns a Buffer that keeps the last limit bytes written to it
// (all of them when limit is 0 or less).
func NewBuffer(limit int) *Buffer { return &Buffer{limit: limit} }

// Write appends p, dropping the oldest bytes beyond the limit. It never
// fails.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.b = append(b.b, p...)
	if over := len(b.b) - b.limit; b.limit > 0 && over > 0 {
		b.b = append(b.b[:0], b.b[over:]...)
	}
	return len(p), nil
}

// String returns what the buffer holds.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.b)
}

// Tail returns the last n bytes the buffer holds, marked with a leading
// "…" when there was more.
func (b *Buffer) Tail(n int) string {
	s := b.String()
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}
