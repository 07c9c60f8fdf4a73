// Package fetch reads configuration documents from repository URLs and
// calls remote decision APIs with a bounded, retrying HTTP client. It is
// the one reader of access rules (rules), policy sets and key sets (ladon,
// jwt, id_token), with one size limit and one redaction of credentials in
// every error, and it serves the handlers that call out per request
// (remote authorizers, hydrator, token introspection).
package fetch

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// MaxDocumentBytes bounds every document read by [Read] and [ReadAll]:
// access rules, policy sets, key sets. A larger one is refused rather than
// buffered.
const MaxDocumentBytes = 16 << 20

// Error is a document that could not be read. Location names the source
// as it may be shown in logs and answers: a file's path, a URL without its
// user info and query ([Redact]), or inline://… for an inline document;
// Err says what went wrong without repeating the location (net/http's
// errors, which do, are cut down to their operation and cause).
type Error struct {
	Location string
	Err      error
}

func (e *Error) Error() string { return e.Location + ": " + e.Err.Error() }

// Unwrap returns Err.
func (e *Error) Unwrap() error { return e.Err }

// Document is one document as read.
type Document struct {
	// Name is what errors and listings call the document: the file's
	// path, the redacted URL, or "inline".
	Name string
	Data []byte
}

// kind is the sort of location a raw string names.
type kind int

const (
	kindFile kind = iota
	kindHTTP
	kindInline
	kindUnsupported
)

func kindOf(raw string) kind {
	switch {
	case strings.HasPrefix(raw, "inline://"):
		return kindInline
	case strings.HasPrefix(raw, "http://"), strings.HasPrefix(raw, "https://"):
		return kindHTTP
	case strings.HasPrefix(raw, "file://"), !strings.Contains(raw, "://"):
		return kindFile
	default:
		return kindUnsupported
	}
}

var errUnsupported = errors.New("unsupported URL scheme (use file://, http(s):// or inline://)")

// Read returns the document named by raw, one of
//
//   - file:///abs/path or file://rel/path (a path relative to the working
//     directory); a bare path is read as a file too,
//   - http://host/... or https://host/... (GET; only a 200 answer counts),
//   - inline://BASE64 (standard or URL alphabet, padding optional).
//
// client may be nil for [http.DefaultClient]; ctx bounds an HTTP fetch.
// Every error is an [*Error].
func Read(ctx context.Context, client *http.Client, raw string) ([]byte, error) {
	switch kindOf(raw) {
	case kindInline:
		return decodeInline(raw)
	case kindHTTP:
		return readHTTP(ctx, client, raw)
	case kindFile:
		return readFile(strings.TrimPrefix(raw, "file://"))
	default:
		return nil, &Error{Location: Redact(raw), Err: errUnsupported}
	}
}

// ReadAll returns the documents named by raw: the one [Read] returns, or,
// for a directory, every .json, .yaml and .yml file in it (not those whose
// name starts with a dot, not subdirectories), in name order. Every error
// is an [*Error].
func ReadAll(ctx context.Context, client *http.Client, raw string) ([]Document, error) {
	switch kindOf(raw) {
	case kindInline:
		data, err := decodeInline(raw)
		if err != nil {
			return nil, err
		}
		return []Document{{Name: "inline", Data: data}}, nil
	case kindHTTP:
		data, err := readHTTP(ctx, client, raw)
		if err != nil {
			return nil, err
		}
		return []Document{{Name: Redact(raw), Data: data}}, nil
	case kindFile:
		return readFiles(strings.TrimPrefix(raw, "file://"))
	default:
		return nil, &Error{Location: Redact(raw), Err: errUnsupported}
	}
}

// CheckURL reports whether raw is a location [Read] understands, without
// reading it.
func CheckURL(raw string) error {
	switch kindOf(raw) {
	case kindInline:
		_, err := decodeInline(raw)
		return err
	case kindHTTP:
		if u, err := url.Parse(raw); err != nil || u.Host == "" {
			return &Error{Location: Redact(raw), Err: errors.New("invalid URL")}
		}
		return nil
	case kindFile:
		if strings.TrimPrefix(raw, "file://") == "" {
			return &Error{Location: raw, Err: errors.New("names no file")}
		}
		return nil
	default:
		return &Error{Location: Redact(raw), Err: errUnsupported}
	}
}

func readFiles(path string) ([]Document, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fileError(path, err)
	}
	if !fi.IsDir() {
		data, err := readFile(path)
		if err != nil {
			return nil, err
		}
		return []Document{{Name: path, Data: data}}, nil
	}
	entries, err := os.ReadDir(path)
	if err != nil {
		return nil, fileError(path, err)
	}
	var docs []Document
	for _, e := range entries { // os.ReadDir sorts by name
		switch strings.ToLower(filepath.Ext(e.Name())) {
		case ".json", ".yaml", ".yml":
		default:
			continue
		}
		if e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		name := filepath.Join(path, e.Name())
		data, err := readFile(name)
		if err != nil {
			return nil, err
		}
		docs = append(docs, Document{Name: name, Data: data})
	}
	return docs, nil
}

func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fileError(path, err)
	}
	defer f.Close()
	return readLimited(f, path)
}

// fileError is an *Error at path; an *fs.PathError, which repeats the
// path, is cut down to its operation and cause.
func fileError(path string, err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = fmt.Errorf("%s: %w", pe.Op, pe.Err)
	}
	return &Error{Location: path, Err: err}
}

func readHTTP(ctx context.Context, client *http.Client, raw string) ([]byte, error) {
	if client == nil {
		client = http.DefaultClient
	}
	loc := Redact(raw)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, raw, nil)
	if err != nil {
		return nil, &Error{Location: loc, Err: errors.New("invalid URL")}
	}
	req.Header.Set("Accept", "application/json, application/yaml, text/yaml, */*;q=0.5")
	res, err := client.Do(req)
	if err != nil {
		return nil, &Error{Location: loc, Err: stripURL(err)}
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 64<<10))
		return nil, &Error{Location: loc, Err: fmt.Errorf("answered %d %s", res.StatusCode, http.StatusText(res.StatusCode))}
	}
	return readLimited(res.Body, loc)
}

// readLimited reads r whole, up to [MaxDocumentBytes]; loc names it in
// errors.
func readLimited(r io.Reader, loc string) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, MaxDocumentBytes+1))
	if err != nil {
		return nil, &Error{Location: loc, Err: stripURL(err)}
	}
	if len(b) > MaxDocumentBytes {
		return nil, &Error{Location: loc, Err: fmt.Errorf("larger than %d bytes", MaxDocumentBytes)}
	}
	return b, nil
}

// decodeInline decodes an inline://BASE64 location.
func decodeInline(raw string) ([]byte, error) {
	s := strings.TrimSpace(strings.TrimPrefix(raw, "inline://"))
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			return b, nil
		}
	}
	return nil, &Error{Location: Redact(raw), Err: errors.New("not valid base64")}
}

// Redact returns a URL fit for logs: user info and query are dropped (they
// may carry credentials) and inline documents are summarised.
func Redact(raw string) string {
	if strings.HasPrefix(raw, "inline://") {
		return "inline://…"
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	u.User = nil
	if u.RawQuery != "" {
		u.RawQuery = "…"
	}
	u.Fragment = ""
	return u.String()
}

// stripURL removes the URL that *url.Error repeats in its message, since
// it may carry a query string; the operation and cause are kept.
func stripURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s: %w", ue.Op, ue.Err)
	}
	return err
}

// Poll calls load every interval until ctx ends. initial is the document
// the caller already loaded and applied; onChange runs only when a load
// returns different bytes than the last applied document, and onError for a
// failed load or a failed onChange (the caller keeps its last good state;
// a rejected document is reported once, not on every tick).
func Poll(ctx context.Context, interval time.Duration, initial []byte, load func(context.Context) ([]byte, error), onChange func([]byte) error, onError func(error)) {
	last := initial
	var rejected []byte
	Every(ctx, interval, func(time.Time) {
		b, err := load(ctx)
		if err != nil {
			onError(err)
			return
		}
		if bytes.Equal(b, last) || (rejected != nil && bytes.Equal(b, rejected)) {
			return
		}
		if err := onChange(b); err != nil {
			rejected = b
			onError(err)
			return
		}
		last, rejected = b, nil
	})
}

// DefaultPollInterval is the interval [Every] polls at when given none.
const DefaultPollInterval = time.Second

// Every calls tick with the tick's time every interval until ctx ends, and
// returns then; a non-positive interval is [DefaultPollInterval]. Calls
// never overlap: while one runs, the ticks that fall due are dropped as
// [time.Ticker] drops them for a slow receiver, so a slow source is not
// read again and again to catch up. It is the one poll loop of the configuration
// file, the rules repositories and the documents [Poll] watches.
func Every(ctx context.Context, interval time.Duration, tick func(now time.Time)) {
	if interval <= 0 {
		interval = DefaultPollInterval
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			tick(now)
		}
	}
}

// Settle tells when a polled content that changed is to be applied: once
// two polls in a row have read it, so a file caught half-written (an
// editor that truncates, then writes) is never applied; and once, so a
// content that failed is not tried again until it changes. Contents are
// named by their SHA-256. The zero value has applied nothing; a Settle is
// a value (copy it to keep a state to go back to) and is not safe for
// concurrent use.
type Settle struct {
	applied, pending [32]byte
}

// Applied records sum as the content applied, without waiting for a
// second read (the first load, a forced one).
func (s *Settle) Applied(sum [32]byte) { s.applied = sum }

// Due reports whether sum, the content a poll just read, is to be applied
// now: it differs from the content last applied, and the poll before read
// it too. From the moment Due returns true, sum counts as applied, whether
// applying it then succeeds or fails.
func (s *Settle) Due(sum [32]byte) bool {
	if sum == s.applied {
		return false
	}
	if sum != s.pending {
		s.pending = sum
		return false
	}
	s.applied = sum
	return true
}
