package proxy

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/portcullis-proxy/portcullis/pipeline"
	"github.com/portcullis-proxy/portcullis/rules"
)

// Version describes the running build.
type Version struct {
	Version string `json:"version"`
	Commit  string `json:"commit,omitempty"`
	Date    string `json:"date,omitempty"`
}

// APIOptions configures an [API]. Zero fields take the documented
// defaults; [NewAPI] copies them and the API never changes them.
type APIOptions struct {
	// DecisionOptions serve /decisions (its log line is "decision", its
	// metric's front end "decisions"); Rules also serves /rules and
	// /health/ready.
	DecisionOptions
	// Version is what /version answers.
	Version Version
	// Routes are extra endpoints (net/http pattern → handler), such as the
	// admin API's and the key set handlers contribute; NewAPI registers
	// them once, and later changes to the map are not seen.
	Routes map[string]http.Handler
	// Ready, when set, adds a readiness condition beyond "rules loaded".
	Ready func() error
}

// API serves the API listener: /decisions, /rules, /health/alive,
// /health/ready, /version, and the extra routes of [APIOptions.Routes]
// (/.well-known/jwks.json, /admin/). Every answer is JSON, the mux's own
// included (an unknown path is a JSON 404, a wrong method a JSON 405 with
// Allow), never HTML-escaped, and indented when the request asks with
// ?pretty. Without a contributed /.well-known/jwks.json (no id_token
// mutator enabled) that path answers an empty key set. Build it with
// [NewAPI]; it is ready for concurrent use from its first request.
type API struct {
	path    decisionPath
	version Version
	ready   func() error
	mux     *http.ServeMux
}

// NewAPI returns the API configured by o. It panics when o.Rules is nil.
func NewAPI(o APIOptions) *API {
	a := &API{
		path:    newDecisionPath(o.DecisionOptions, frontEnd{metric: "decisions", span: "decision ", line: "decision"}),
		version: o.Version,
		ready:   o.Ready,
		mux:     http.NewServeMux(),
	}
	mux := a.mux
	mux.Handle("/rules", onlyGet(a.listRules))
	mux.Handle("/rules/{id}", onlyGet(a.getRule))
	mux.Handle("/health/alive", onlyGet(func(w http.ResponseWriter, r *http.Request) {
		pipeline.WriteJSON(w, r, http.StatusOK, map[string]string{"status": "ok"})
	}))
	mux.Handle("/health/ready", onlyGet(a.serveReady))
	mux.Handle("/version", onlyGet(func(w http.ResponseWriter, r *http.Request) {
		pipeline.WriteJSON(w, r, http.StatusOK, a.version)
	}))
	jwks := false
	for p, h := range o.Routes {
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
	return a
}

// ServeHTTP implements http.Handler.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// /decisions is routed on the target as received: ServeMux would
	// answer a path it cleans ("//", "..") with a redirect, and a decoded
	// "/%64ecisions" would reach it under another name.
	if isDecisionsTarget(rawTarget(r)) {
		a.serveDecision(w, r)
		return
	}
	a.mux.ServeHTTP(w, r)
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

// serveReady answers /health/ready: 200 once the rules are loaded and the
// Ready condition holds, 503 naming what is missing otherwise.
func (a *API) serveReady(w http.ResponseWriter, r *http.Request) {
	if a.path.rules.Current() == nil {
		pipeline.WriteJSON(w, r, http.StatusServiceUnavailable, map[string]any{"errors": map[string]string{"rules": "access rules are not loaded"}})
		return
	}
	if a.ready != nil {
		if err := a.ready(); err != nil {
			pipeline.WriteJSON(w, r, http.StatusServiceUnavailable, map[string]any{"errors": map[string]string{"ready": err.Error()}})
			return
		}
	}
	pipeline.WriteJSON(w, r, http.StatusOK, map[string]string{"status": "ok"})
}

// listRules answers GET /rules?limit=&offset= with the rules in load order
// (limit defaults to 100, at most 500).
func (a *API) listRules(w http.ResponseWriter, r *http.Request) {
	set := a.path.rules.Current()
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
	if set := a.path.rules.Current(); set != nil {
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
