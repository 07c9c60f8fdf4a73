package proxy

import (
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

// Handler returns the API's http.Handler. Every answer is JSON, the
// mux's own included (an unknown path is a JSON 404, a wrong method a JSON
// 405 with Allow), never HTML-escaped, and indented when the request asks
// with ?pretty. Without a contributed /.well-known/jwks.json (no id_token
// mutator enabled) that path answers an empty key set.
func (a *API) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/rules", onlyGet(a.listRules))
	mux.Handle("/rules/{id}", onlyGet(a.getRule))
	mux.Handle("/health/alive", onlyGet(func(w http.ResponseWriter, r *http.Request) {
		pipeline.WriteJSON(w, r, http.StatusOK, map[string]string{"status": "ok"})
	}))
	mux.Handle("/health/ready", onlyGet(a.ready))
	mux.Handle("/version", onlyGet(func(w http.ResponseWriter, r *http.Request) {
		pipeline.WriteJSON(w, r, http.StatusOK, a.Version)
	}))
	jwks := false
	for p, h := range a.Routes {
		mux.Handle(p, h)
		jwks = jwks || strings.HasSuffix(p, JWKSPath)
	}
	if !jwks {
		mux.Handle(JWKSPath, onlyGet(func(w http.ResponseWriter, r *http.Request) {
			pipeline.WriteJSON(w, r, http.StatusOK, emptyKeySet{Keys: []struct{}{}})
		}))
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		pipeline.WriteRequestError(w, r, pipeline.NewError(http.StatusNotFound, "no API endpoint "+strconv.Quote(r.URL.Path), nil), false)
	})
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

// JWKSPath is where the API serves the id_token mutator's public keys.
const JWKSPath = "/.well-known/jwks.json"

// emptyKeySet is the JWKS document of a server that signs nothing (RFC
// 7517 §5: "keys" is required, and may be empty).
type emptyKeySet struct {
	Keys []struct{} `json:"keys"`
}

// onlyGet serves GET and HEAD with h and answers any other method with a
// JSON 405 and Allow.
func onlyGet(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			pipeline.WriteRequestError(w, r, pipeline.NewError(http.StatusMethodNotAllowed, "method "+r.Method+" is not allowed here", nil), false)
			return
		}
		h(w, r)
	})
}

func (a *API) ready(w http.ResponseWriter, r *http.Request) {
	if a.Rules.Current() == nil {
		pipeline.WriteJSON(w, r, http.StatusServiceUnavailable, map[string]any{"errors": map[string]string{"rules": "access rules are not loaded"}})
		return
	}
	if a.Ready != nil {
		if err := a.Ready(); err != nil {
			pipeline.WriteJSON(w, r, http.StatusServiceUnavailable, map[string]any{"errors": map[string]string{"ready": err.Error()}})
			return
		}
	}
	pipeline.WriteJSON(w, r, http.StatusOK, map[string]string{"status": "ok"})
}

// listRules answers GET /rules?limit=&offset= with the rules in load order
// (limit defaults to 100, at most 500).
func (a *API) listRules(w http.ResponseWriter, r *http.Request) {
	set := a.Rules.Current()
	if set == nil {
		pipeline.WriteJSON(w, r, http.StatusOK, []rules.Rule{})
		return
	}
	limit, offset := 100, 0
	q := r.URL.Query()
	for name, dst := range map[string]*int{"limit": &limit, "offset": &offset} {
		if v := q.Get(name); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				pipeline.WriteRequestError(w, r, pipeline.Errorf(http.StatusBadRequest, "query parameter %s must be a non-negative integer", name), false)
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
	pipeline.WriteJSON(w, r, http.StatusOK, out)
}

func (a *API) getRule(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if set := a.Rules.Current(); set != nil {
		if c, ok := set.Get(id); ok {
			pipeline.WriteJSON(w, r, http.StatusOK, c.Rule)
			return
		}
	}
	pipeline.WriteRequestError(w, r, pipeline.NewError(http.StatusNotFound, "Unable to find rule "+strconv.Quote(strings.TrimSpace(id)), nil), false)
}

// writeJSON answers v as JSON (unescaped, one line) for handlers that do
// not have the request at hand; [pipeline.WriteJSON] is the same with
// ?pretty honoured.
func writeJSON(w http.ResponseWriter, status int, v any) {
	pipeline.WriteJSON(w, nil, status, v)
}
