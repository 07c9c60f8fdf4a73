// Package fetch reads configuration documents from repository URLs and
// calls remote decision APIs with a bounded, retrying HTTP client. It is
// shared by the handlers that load policies or keys (ladon, jwt, id_token)
// and by those that call out per request (remote authorizers, hydrator,
// token introspection).
package fetch

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

// MaxDocumentBytes bounds a document read by [Read]: policy sets and key
// sets are small; anything larger is refused rather than buffered.
const MaxDocumentBytes = 8 << 20

// Read returns the document named by raw, one of
//
//   - file:///abs/path or file://rel/path (a path relative to the working
//     directory); a bare path is read as a file too,
//   - http://host/... or https://host/... (GET; only a 200 answer counts),
//   - inline://BASE64 (standard or URL alphabet, padding optional).
//
// client may be nil for [http.DefaultClient]; ctx bounds an HTTP fetch.
func Read(ctx context.Context, client *http.Client, raw string) ([]byte, error) {
	switch {
	case strings.HasPrefix(raw, "inline://"):
		return decodeInline(strings.TrimPrefix(raw, "inline://"))
	case strings.HasPrefix(raw, "http://"), strings.HasPrefix(raw, "https://"):
		return readHTTP(ctx, client, raw)
	case strings.HasPrefix(raw, "file://"):
		return readFile(filePath(raw))
	case strings.Contains(raw, "://"):
		return nil, fmt.Errorf("unsupported URL scheme in %q (use file://, http(s):// or inline://)", Redact(raw))
	default:
		return readFile(raw)
	}
}

// CheckURL reports whether raw is a location [Read] understands, without
// reading it.
func CheckURL(raw string) error {
	switch {
	case raw == "":
		return errors.New("empty URL")
	case strings.HasPrefix(raw, "inline://"):
		_, err := decodeInline(strings.TrimPrefix(raw, "inline://"))
		return err
	case strings.HasPrefix(raw, "http://"), strings.HasPrefix(raw, "https://"):
		u, err := url.Parse(raw)
		if err != nil || u.Host == "" {
			return fmt.Errorf("invalid URL %q", Redact(raw))
		}
		return nil
	case strings.HasPrefix(raw, "file://"):
		if filePath(raw) == "" {
			return fmt.Errorf("file URL %q names no path", raw)
		}
		return nil
	case strings.Contains(raw, "://"):
		return fmt.Errorf("unsupported URL scheme in %q (use file://, http(s):// or inline://)", Redact(raw))
	default:
		return nil
	}
}

// filePath turns file:///a/b into /a/b and file://a/b into a/b.
func filePath(raw string) string {
	return strings.TrimPrefix(raw, "file://")
}

func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readLimited(f, path)
}

func readHTTP(ctx context.Context, client *http.Client, raw string) ([]byte, error) {
	if client == nil {
		client = http.DefaultClient
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, raw, nil)
	if err != nil {
		return nil, fmt.Errorf("invalid URL %q", Redact(raw))
	}
	req.Header.Set("Accept", "application/json, application/yaml;q=0.9, */*;q=0.5")
	res, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetching %s: %w", Redact(raw), stripURL(err))
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 64<<10))
		return nil, fmt.Errorf("fetching %s: status %d", Redact(raw), res.StatusCode)
	}
	return readLimited(res.Body, Redact(raw))
}

func readLimited(r io.Reader, name string) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, MaxDocumentBytes+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	if len(b) > MaxDocumentBytes {
		return nil, fmt.Errorf("%s is larger than %d bytes", name, MaxDocumentBytes)
	}
	return b, nil
}

func decodeInline(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			return b, nil
		}
	}
	return nil, errors.New("inline:// document is not valid base64")
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
	tick := func() {
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
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			tick()
		}
	}
}
