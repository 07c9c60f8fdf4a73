package rules

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/portcullis-proxy/portcullis/internal/fetch"
)

// MaxDocumentSize bounds a rules document read from any repository.
const MaxDocumentSize = 16 << 20

// document is one rules file as fetched.
type document struct {
	name string
	data []byte
}

// fetchRepository reads the documents behind one access_rules.repositories
// entry: file://PATH (a file, or every .json/.yaml/.yml file of a
// directory), http(s)://URL, or inline://BASE64. A bare path is a file.
func fetchRepository(ctx context.Context, client *http.Client, loc string) ([]document, error) {
	switch {
	case strings.HasPrefix(loc, "inline://"):
		data, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(loc, "inline://"))
		if err != nil {
			if data, err = base64.RawStdEncoding.DecodeString(strings.TrimPrefix(loc, "inline://")); err != nil {
				return nil, fmt.Errorf("%s: inline repository is not valid base64: %v", fetch.Redact(loc), err)
			}
		}
		return []document{{name: "inline", data: data}}, nil
	case strings.HasPrefix(loc, "http://"), strings.HasPrefix(loc, "https://"):
		return fetchHTTP(ctx, client, loc)
	default:
		return fetchFile(strings.TrimPrefix(loc, "file://"))
	}
}

func fetchFile(path string) ([]document, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !fi.IsDir() {
		return readDoc(path)
	}
	entries, err := os.ReadDir(path)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range entries {
		switch strings.ToLower(filepath.Ext(e.Name())) {
		case ".json", ".yaml", ".yml":
			if !e.IsDir() && !strings.HasPrefix(e.Name(), ".") {
				names = append(names, filepath.Join(path, e.Name()))
			}
		}
	}
	sort.Strings(names)
	var docs []document
	for _, n := range names {
		d, err := readDoc(n)
		if err != nil {
			return nil, err
		}
		docs = append(docs, d...)
	}
	return docs, nil
}

func readDoc(path string) ([]document, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxDocumentSize+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(data) > MaxDocumentSize {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, MaxDocumentSize)
	}
	return []document{{name: path, data: data}}, nil
}

// fetchHTTP reads an http(s) repository. The location may carry
// credentials (user info, a token in the query): every error and the
// document's name (which rule errors and /rules show) use the redacted
// location, and net/http's *url.Error, which repeats the whole URL, is
// unwrapped to its operation and cause.
func fetchHTTP(ctx context.Context, client *http.Client, loc string) ([]document, error) {
	name := fetch.Redact(loc)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, loc, nil)
	if err != nil {
		return nil, fmt.Errorf("%s: invalid URL", name)
	}
	req.Header.Set("Accept", "application/json, application/yaml, text/yaml")
	res, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, withoutURL(err))
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: answered %s", name, res.Status)
	}
	data, err := io.ReadAll(io.LimitReader(res.Body, MaxDocumentSize+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, withoutURL(err))
	}
	if len(data) > MaxDocumentSize {
		return nil, fmt.Errorf("%s: larger than %d bytes", name, MaxDocumentSize)
	}
	return []document{{name: name, data: data}}, nil
}

// withoutURL drops the URL a *url.Error repeats in its message.
func withoutURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s: %w", ue.Op, ue.Err)
	}
	return err
}

// LoadFiles parses and compiles the documents behind the locations, as
// `rules validate` and tests use it.
func LoadFiles(ctx context.Context, c *Compiler, locs []string) (*Set, error) {
	docs, err := fetchAll(ctx, http.DefaultClient, locs)
	if err != nil {
		return nil, err
	}
	return compileDocs(c, docs)
}

func fetchAll(ctx context.Context, client *http.Client, locs []string) ([]document, error) {
	var docs []document
	for _, l := range locs {
		d, err := fetchRepository(ctx, client, l)
		if err != nil {
			return nil, err
		}
		docs = append(docs, d...)
	}
	return docs, nil
}

func compileDocs(c *Compiler, docs []document) (*Set, error) {
	var all []Sourced
	var errs Errors
	for _, d := range docs {
		rs, err := Parse(d.name, d.data)
		if err != nil {
			var es Errors
			if errors.As(err, &es) {
				errs = append(errs, es...)
			} else {
				errs = append(errs, err)
			}
		}
		all = append(all, rs...)
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return c.Compile(all)
}

// Repository serves the current rule set of access_rules.repositories and
// replaces it when a source changes. A change that fails to fetch, parse or
// compile is logged with its file:line and ignored: the last good set keeps
// serving, nothing is dropped.
type Repository struct {
	Locations []string
	Compiler  *Compiler
	Log       logrus.FieldLogger
	// Client fetches http(s) repositories; nil uses a client with a 10s timeout.
	Client *http.Client
	// PollInterval is how often file sources are re-read (default 1s).
	PollInterval time.Duration
	// HTTPPollInterval is how often http(s) sources are fetched (default 30s).
	HTTPPollInterval time.Duration
	// OnReload, when set, is told of every reload attempt's outcome.
	OnReload func(err error)
	// OnSwap, when set, is called each time a new set replaces a serving
	// one (a changed source, a Reconfigure), once the new set serves and
	// before the old one is closed, with both; not for the first load.
	// Reloads wait for it: live channels are re-evaluated against the new
	// rules here ([Set.Reevaluate]) before the next reload can begin.
	OnSwap func(old, current *Set)

	current atomic.Pointer[Set]
	// mu serialises reloads: the poll loop and Reconfigure (a new
	// configuration) never compile at the same time, and Locations and
	// Compiler change only under it. Requests never take it.
	mu       sync.Mutex
	lastHash [32]byte
	// pending is a changed content seen once: it is applied only when the
	// next poll sees the same bytes, so a file caught half-written (an
	// editor that truncates, then writes) is never compiled.
	pending [32]byte
	// cache holds the last documents fetched per location, so a source
	// that is not due (http) or failed is not re-fetched on every tick.
	cache     map[string][]document
	fetchedAt map[string]time.Time
}

// Current returns the serving rule set, or nil before the first load.
func (r *Repository) Current() *Set { return r.current.Load() }

// Load reads and compiles every source and makes the result current. It is
// called once before Watch.
func (r *Repository) Load(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, err := r.reload(ctx, time.Now(), true)
	return err
}

// Reconfigure replaces the locations and the compiler (a configuration
// reload: other handlers, another strategy) and compiles every source with
// them. The new set, locations and compiler are installed together, in one
// step, only when all of it succeeds; otherwise nothing changes, the
// error is returned and the current rules keep serving.
func (r *Repository) Reconfigure(ctx context.Context, locations []string, comp *Compiler) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	oldLocs, oldComp := r.Locations, r.Compiler
	oldCache, oldFetched := r.cache, r.fetchedAt
	oldHash, oldPending := r.lastHash, r.pending
	r.Locations, r.Compiler = locations, comp
	r.cache, r.fetchedAt = nil, nil
	if _, err := r.reload(ctx, time.Now(), true); err != nil {
		r.Locations, r.Compiler = oldLocs, oldComp
		r.cache, r.fetchedAt = oldCache, oldFetched
		r.lastHash, r.pending = oldHash, oldPending
		return err
	}
	return nil
}

func (r *Repository) client() *http.Client {
	if r.Client != nil {
		return r.Client
	}
	return &http.Client{Timeout: 10 * time.Second}
}

func isHTTP(loc string) bool {
	return strings.HasPrefix(loc, "http://") || strings.HasPrefix(loc, "https://")
}

// reload re-reads the sources that are due (all of them when force is
// set); when the combined content differs from the last attempt it compiles
// it and swaps the set in. It reports whether a new set was installed.
func (r *Repository) reload(ctx context.Context, now time.Time, force bool) (bool, error) {
	if r.cache == nil {
		r.cache = map[string][]document{}
		r.fetchedAt = map[string]time.Time{}
	}
	httpPoll := r.HTTPPollInterval
	if httpPoll <= 0 {
		httpPoll = 30 * time.Second
	}
	var docs []document
	for _, loc := range r.Locations {
		due := force || !isHTTP(loc) || now.Sub(r.fetchedAt[loc]) >= httpPoll
		if due {
			d, err := fetchRepository(ctx, r.client(), loc)
			if err != nil {
				r.report(err)
				return false, err
			}
			r.cache[loc], r.fetchedAt[loc] = d, now
		}
		docs = append(docs, r.cache[loc]...)
	}
	h := sha256.New()
	for _, d := range docs {
		fmt.Fprintf(h, "%s\x00%d\x00", d.name, len(d.data))
		h.Write(d.data)
	}
	var sum [32]byte
	copy(sum[:], h.Sum(nil))
	if !force && sum == r.lastHash {
		return false, nil
	}
	if !force && sum != r.pending {
		r.pending = sum
		return false, nil
	}
	r.lastHash = sum
	set, err := compileDocs(r.Compiler, docs)
	if err != nil {
		r.report(err)
		return false, err
	}
	if old := r.current.Swap(set); old != nil {
		if r.OnSwap != nil {
			r.OnSwap(old, set)
		}
		// Requests in flight keep the old handlers, which hold no
		// per-request state; closing only stops their background work.
		_ = old.Close()
	}
	r.report(nil)
	if r.Log != nil {
		for _, w := range set.Warnings() {
			r.Log.Warn(w.Error())
		}
		r.Log.WithField("rules", set.Len()).Info("access rules loaded")
		// Overlapping rules still load, as in Oathkeeper; each proven
		// (or undecided) overlap is one warning.
		for _, e := range set.Overlaps().Errors() {
			r.Log.WithField("rules_overlap", true).Warn(e.Error())
		}
	}
	return true, nil
}

func (r *Repository) report(err error) {
	if r.OnReload != nil {
		r.OnReload(err)
	}
	if err != nil && r.Log != nil {
		r.Log.WithError(err).Error("access rules not loaded; the last good rules keep serving")
	}
}

// Watch re-reads the sources until ctx ends: files and inline sources
// every PollInterval, http(s) sources every HTTPPollInterval. A content
// that failed once is not re-compiled until it changes again.
func (r *Repository) Watch(ctx context.Context) {
	poll := r.PollInterval
	if poll <= 0 {
		poll = time.Second
	}
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			r.mu.Lock()
			_, _ = r.reload(ctx, now, false)
			r.mu.Unlock()
		}
	}
}
