package proxy

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"

	"github.com/sirupsen/logrus"

	"github.com/portcullis-proxy/portcullis/pipeline"
	"github.com/portcullis-proxy/portcullis/rules"
)

// Version describes the running build.
type Version struct {
	Version string `json:"version"`
	Commit  string `json:"commit,omitempty"`
	Date    string `json:"date,omitempty"`
}

// API serves the API listener: /decisions, /rules, /health/alive,
// /health/ready, /version, and the extra routes handlers contribute
// (/.well-known/jwks.json).
type API struct {
	Rules    RuleSource
	Version  Version
	Log      logrus.FieldLogger
	Observer Observer
	// Routes are extra endpoints (path → handler).
	Routes map[string]http.Handler
	// Ready, when set, adds a readiness condition beyond "rules loaded".
	Ready func() error
	// Revocations, when set, denies decisions for revoked sessions and
	// subjects (401), as the proxy does.
	Revocations SessionRevocations
	// Tracing makes a span per decision; nil makes none.
	Tracing *Tracing

	mux *http.ServeMux
}

func (a *API) observer() Observer {
	if a.Observer == nil {
		return nopObserver{}
	}
	return a.Observer
}

func (a *API) log() logrus.FieldLogger {
	if a.Log == nil {
		l := logrus.New()
		l.Out = discard{}
		return l
	}
	return a.Log
}

// Handler returns the API's http.Handler.
func (a *API) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /rules", a.listRules)
	mux.HandleFunc("GET /rules/{id}", a.getRule)
	mux.HandleFunc("GET /health/alive", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /health/ready", a.ready)
	mux.HandleFunc("GET /version", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, a.Version)
	})
	for p, h := range a.Routes {
		mux.Handle(p, h)
	}
	a.mux = mux
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// /decisions is routed on the target as received: ServeMux would
		// answer a path it cleans ("//", "..") with a redirect, and a
		// decoded "/%64ecisions" would reach it under another name.
		if isDecisionsTarget(rawTarget(r)) {
			a.serveDecision(w, r)
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// isDecisionsTarget reports whether the raw target t is /decisions or
// below it.
func isDecisionsTarget(t string) bool {
	rest, ok := strings.CutPrefix(t, "/decisions")
	return ok && (rest == "" || rest[0] == '/' || rest[0] == '?')
}

func (a *API) ready(w http.ResponseWriter, _ *http.Request) {
	if a.Rules.Current() == nil {
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"errors": map[string]string{"rules": "access rules are not loaded"}})
		return
	}
	if a.Ready != nil {
		if err := a.Ready(); err != nil {
			writeJSON(w, http.StatusServiceUnavailable, map[string]any{"errors": map[string]string{"ready": err.Error()}})
			return
		}
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// listRules answers GET /rules?limit=&offset= with the rules in load order
// (limit defaults to 100, at most 500).
func (a *API) listRules(w http.ResponseWriter, r *http.Request) {
	set := a.Rules.Current()
	if set == nil {
		writeJSON(w, http.StatusOK, []rules.Rule{})
		return
	}
	limit, offset := 100, 0
	q := r.URL.Query()
	for name, dst := range map[string]*int{"limit": &limit, "offset": &offset} {
		if v := q.Get(name); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				pipeline.WriteError(w, pipeline.Errorf(http.StatusBadRequest, "query parameter %s must be a non-negative integer", name), false)
				return
			}
			*dst = n
		}
	}
	if limit > 500 {
		limit = 500
	}
	all := set.Rules()
	out := []rules.Rule{}
	for i := offset; i < len(all) && len(out) < limit; i++ {
		out = append(out, all[i].Rule)
	}
	writeJSON(w, http.StatusOK, out)
}

func (a *API) getRule(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if set := a.Rules.Current(); set != nil {
		if c, ok := set.Get(id); ok {
			writeJSON(w, http.StatusOK, c.Rule)
			return
		}
	}
	pipeline.WriteError(w, pipeline.NewError(http.StatusNotFound, "Unable to find rule "+strconv.Quote(strings.TrimSpace(id)), nil), false)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
