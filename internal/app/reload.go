package app

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"os"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/portcullis-proxy/portcullis/config"
	"github.com/portcullis-proxy/portcullis/internal/fetch"
	"github.com/portcullis-proxy/portcullis/internal/registry"
	"github.com/portcullis-proxy/portcullis/mutators"
	"github.com/portcullis-proxy/portcullis/pipeline"
)

// reloadState is what the configuration hot reload keeps between reloads.
type reloadState struct {
	// mu serialises reloads (the file watcher and ReloadConfig callers).
	mu sync.Mutex
	// current is the configuration serving.
	current atomic.Pointer[config.Config]
	// routes are the API endpoints the current handlers serve.
	routes atomic.Pointer[map[string]http.Handler]
	// generation cancels the background work of the current handlers.
	generation context.CancelFunc
	// settle holds the hash of the file content last applied (or
	// refused) and of a changed content seen once, applied when seen twice.
	settle fetch.Settle
}

// CurrentConfig returns the configuration serving: the one the server
// started with, or the last one a reload installed.
func (s *Server) CurrentConfig() *config.Config { return s.reload.current.Load() }

// apiRoutes serves the API endpoints handlers contribute (the id_token
// mutator's key set) through the current catalog, so a reload that
// enables, changes or disables such a handler is seen at once.
func (s *Server) apiRoutes(cat *pipeline.Catalog) map[string]http.Handler {
	routes := cat.APIRoutes()
	s.reload.routes.Store(&routes)
	paths := map[string]bool{mutators.JWKSPath: true}
	for p := range routes {
		paths[p] = true
	}
	out := map[string]http.Handler{}
	for p := range paths {
		out[p] = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if h, ok := (*s.reload.routes.Load())[p]; ok {
				h.ServeHTTP(w, r)
				return
			}
			pipeline.WriteError(w, pipeline.NewError(http.StatusNotFound, "No handler serves "+p, nil), false)
		})
	}
	return out
}

// ReloadConfig reads the configuration file again and, when it is valid,
// makes it serve: the handlers are enabled anew from it, the rules of its
// access_rules.repositories are compiled with them, and the new rule set
// is swapped in — one atomic step, so no request sees new handlers with
// old rules or the reverse. Anything that fails (the file does not parse,
// a handler's global config is wrong, a rule does not compile) leaves the
// last good configuration and rules serving and is returned as
// "file:line: message".
//
// The listeners (serve.*) are not rebound: a change there is logged and
// takes effect at the next start. log.level applies at once.
func (s *Server) ReloadConfig(ctx context.Context) error {
	data, err := os.ReadFile(s.CurrentConfig().File)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	return s.reloadConfig(ctx, data)
}

// reloadConfig applies data, the configuration file's content.
func (s *Server) reloadConfig(ctx context.Context, data []byte) error {
	s.reload.mu.Lock()
	defer s.reload.mu.Unlock()
	old := s.CurrentConfig()
	cfg, err := config.LoadData(old.File, data, old.Env, registry.HandlerNames(registry.NewCatalog()))
	if err != nil {
		return err
	}
	cat := registry.NewCatalog()
	gctx, gcancel := context.WithCancel(s.ctx)
	deps, err := HandlerDeps(gctx, cfg, s.Log)
	if err != nil {
		gcancel()
		return err
	}
	deps.Revocations = s.Revocations
	if err := Enable(cat, cfg, deps); err != nil {
		gcancel()
		return positionedEnableError(cfg, err)
	}
	comp, err := Compiler(cat, cfg)
	if err != nil {
		gcancel()
		return fmt.Errorf("%s: %w", cfg.Position("access_rules"), err)
	}
	if len(cfg.AccessRules.Repositories) == 0 {
		s.Log.Warn("access_rules.repositories is empty: every request will be answered 404")
	}
	if err := s.Rules.Reconfigure(ctx, cfg.AccessRules.Repositories, comp, rulesClient(deps)); err != nil {
		gcancel()
		return err
	}
	// Installed: the old handlers' background work stops; requests still
	// running on them finish (they hold no per-request state there).
	prev := s.reload.generation
	s.reload.generation = gcancel
	if prev != nil {
		prev()
	}
	routes := cat.APIRoutes()
	s.reload.routes.Store(&routes)
	s.reload.current.Store(cfg)
	for _, w := range cfg.Warnings {
		s.Log.Warn(w)
	}
	if lvl, err := logrus.ParseLevel(cfg.Log.Level); err == nil && lvl != s.Log.GetLevel() {
		s.Log.SetLevel(lvl)
	}
	if !reflect.DeepEqual(cfg.Serve, old.Serve) || cfg.Log.Format != old.Log.Format ||
		cfg.AccessRules.PollInterval != old.AccessRules.PollInterval ||
		cfg.AccessRules.HTTPPollInterval != old.AccessRules.HTTPPollInterval {
		s.Log.Warn("configuration reloaded, but serve.*, log.format and access_rules.*poll_interval take effect at the next start")
	}
	return nil
}

// rulesClient is the client the rules repositories are fetched with: the
// handlers' one client of the http_client block (its ca_file, its
// connect_timeout), following redirects as documents have always been
// read.
func rulesClient(deps pipeline.Deps) *http.Client { return fetch.FollowingRedirects(deps.HTTPClient) }

// watchConfig polls the configuration file every access_rules.poll_interval
// (of the configuration the server started with) and reloads it when its
// content changes. As for rules, a change is applied once two polls read
// the same bytes, so a file caught half-written is never loaded; a content
// that failed is not tried again until it changes.
func (s *Server) watchConfig(ctx context.Context) {
	file := s.Config.File
	if data, err := os.ReadFile(file); err == nil {
		s.reload.settle.Applied(sha256.Sum256(data))
	}
	fetch.Every(ctx, s.Config.AccessRules.PollInterval, func(time.Time) {
		data, err := os.ReadFile(file)
		if err != nil {
			// A file being replaced may be missing for an instant; the
			// last good configuration keeps serving meanwhile.
			if !errors.Is(err, os.ErrNotExist) {
				s.Log.WithError(err).Warn("configuration file not readable; the last good configuration keeps serving")
			}
			return
		}
		if len(bytes.TrimSpace(data)) == 0 {
			return // truncated before being written
		}
		if !s.reload.settle.Due(sha256.Sum256(data)) {
			return
		}
		// The bytes read twice are the ones applied: the file may be
		// rewritten (truncated first) while this runs.
		if err := s.reloadConfig(ctx, data); err != nil {
			s.Log.WithError(err).Error("configuration not reloaded; the last good configuration and rules keep serving")
			return
		}
		s.Log.WithField("file", file).Info("configuration reloaded")
	})
}
