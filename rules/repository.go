package rules

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/portcullis-proxy/portcullis/internal/fetch"
)

// MaxDocumentSize bounds a rules document read from any repository: the
// fetcher's one limit for every document.
const MaxDocumentSize = fetch.MaxDocumentBytes

// defaultTimeout bounds one fetch of an http(s) repository when no client
// is given.
const defaultTimeout = 10 * time.Second

// LoadFiles parses and compiles the documents behind the locations, as
// `rules validate` and tests use it.
func LoadFiles(ctx context.Context, c *Compiler, locs []string) (*Set, error) {
	docs, err := fetchAll(ctx, &http.Client{Timeout: defaultTimeout}, locs)
	if err != nil {
		return nil, err
	}
	return compileDocs(c, docs)
}

// fetchAll reads the documents behind access_rules.repositories entries,
// each file://PATH (a file, or every .json/.yaml/.yml file of a
// directory), http(s)://URL or inline://BASE64; a bare path is a file. An
// http(s) document is named by its redacted location (no user info or
// query), which rule errors and /rules show; every error is a
// [*fetch.Error], redacted the same way.
func fetchAll(ctx context.Context, client *http.Client, locs []string) ([]fetch.Document, error) {
	var docs []fetch.Document
	for _, l := range locs {
		d, err := fetch.ReadAll(ctx, client, l)
		if err != nil {
			return nil, err
		}
		docs = append(docs, d...)
	}
	return docs, nil
}

func compileDocs(c *Compiler, docs []fetch.Document) (*Set, error) {
	var all []Sourced
	var errs Errors
	for _, d := range docs {
		rs, err := Parse(d.Name, d.Data)
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
	// Client fetches http(s) repositories: the configuration's one
	// http_client (its ca_file, its connect_timeout), as every handler's
	// calls are made. nil uses a client of net/http's defaults. Either
	// way one fetch is bounded by 10s unless the client has a Timeout of
	// its own.
	Client *http.Client
	// PollInterval is how often file sources are re-read (default 1s).
	PollInterval time.Duration
	// HTTPPollInterval is how often http(s) sources are fetched (default 30s).
	HTTPPollInterval time.Duration
	// OnReload, when set, is told of every reload attempt's outcome.
	OnReload func(err error)
	// OnSwap, when set, is called each time a new set is about to replace
	// a serving one (a changed source, a Reconfigure), with both, just
	// before the new set serves; not for the first load. Reloads wait for
	// it: live channels are re-evaluated against the new rules here
	// ([Set.Reevaluate]), and a channel admitted meanwhile was admitted by
	// the old set, never by a newer one than OnSwap was given.
	OnSwap func(old, next *Set)

	current atomic.Pointer[Set]
	// mu serialises reloads: the poll loop and Reconfigure (a new
	// configuration) never compile at the same time, and Locations and
	// Compiler change only under it. Requests never take it.
	mu sync.Mutex
	// settle holds the hash of the content last compiled and of a changed
	// content seen once: that one is compiled only when the next poll sees
	// the same bytes, so a file caught half-written (an editor that
	// truncates, then writes) is never compiled.
	settle fetch.Settle
	// cache holds the last documents fetched per location, so a source
	// that is not due (http) or failed is not re-fetched on every tick.
	cache     map[string][]fetch.Document
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

// Reconfigure replaces the locations, the compiler (a configuration
// reload: other handlers, another strategy) and the client (another
// http_client block; nil as for [Repository.Client]) and compiles every
// source with them. The new set, locations, compiler and client are
// installed together, in one step, only when all of it succeeds; otherwise
// nothing changes, the error is returned and the current rules keep
// serving.
func (r *Repository) Reconfigure(ctx context.Context, locations []string, comp *Compiler, client *http.Client) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	oldLocs, oldComp, oldClient := r.Locations, r.Compiler, r.Client
	oldCache, oldFetched := r.cache, r.fetchedAt
	oldSettle := r.settle
	r.Locations, r.Compiler, r.Client = locations, comp, client
	r.cache, r.fetchedAt = nil, nil
	if _, err := r.reload(ctx, time.Now(), true); err != nil {
		r.Locations, r.Compiler, r.Client = oldLocs, oldComp, oldClient
		r.cache, r.fetchedAt = oldCache, oldFetched
		r.settle = oldSettle
		return err
	}
	return nil
}

// client is Client, or net/http's defaults, bounded by defaultTimeout
// when it has no Timeout of its own. r.mu is held.
func (r *Repository) client() *http.Client {
	c := http.Client{}
	if r.Client != nil {
		c = *r.Client
	}
	if c.Timeout <= 0 {
		c.Timeout = defaultTimeout
	}
	return &c
}

func isHTTP(loc string) bool {
	return strings.HasPrefix(loc, "http://") || strings.HasPrefix(loc, "https://")
}

// reload re-reads the sources that are due (all of them when force is
// set); when the combined content differs from the last attempt it compiles
// it and swaps the set in. It reports whether a new set was installed.
func (r *Repository) reload(ctx context.Context, now time.Time, force bool) (bool, error) {
	if r.cache == nil {
		r.cache = map[string][]fetch.Document{}
		r.fetchedAt = map[string]time.Time{}
	}
	httpPoll := r.HTTPPollInterval
	if httpPoll <= 0 {
		httpPoll = 30 * time.Second
	}
	var docs []fetch.Document
	for _, loc := range r.Locations {
		due := force || !isHTTP(loc) || now.Sub(r.fetchedAt[loc]) >= httpPoll
		if due {
			d, err := fetch.ReadAll(ctx, r.client(), loc)
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
		fmt.Fprintf(h, "%s\x00%d\x00", d.Name, len(d.Data))
		h.Write(d.Data)
	}
	var sum [32]byte
	copy(sum[:], h.Sum(nil))
	if force {
		r.settle.Applied(sum)
	} else if !r.settle.Due(sum) {
		return false, nil
	}
	set, err := compileDocs(r.Compiler, docs)
	if err != nil {
		r.report(err)
		return false, err
	}
	if old := r.current.Load(); old != nil && r.OnSwap != nil {
		r.OnSwap(old, set)
	}
	r.current.Store(set)
	// Requests in flight keep the old handlers, which hold no per-request
	// state; their background work stops with the configuration that
	// built them (pipeline.Deps.Context), not with the rule set.
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
	fetch.Every(ctx, r.PollInterval, func(now time.Time) {
		r.mu.Lock()
		_, _ = r.reload(ctx, now, false)
		r.mu.Unlock()
	})
}
