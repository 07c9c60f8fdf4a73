package proxy

import (
	"context"
	"net/http"
	"time"

	"github.com/sirupsen/logrus"
	"go.opentelemetry.io/otel/trace"

	"github.com/portcullis-proxy/portcullis/pipeline"
	"github.com/portcullis-proxy/portcullis/rules"
)

// serveDecision answers /decisions/<path> with Oathkeeper's contract: it
// runs the whole pipeline for the request the call describes (method and
// Host of the call, or X-Forwarded-Method/-Proto/-Host/-Uri) and answers 200
// with the headers the mutators set, or the error handlers' answer.
func (a *API) serveDecision(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rec := &recorder{ResponseWriter: w}
	// Stages and error handlers see the described request, not the call to
	// /decisions: a redirect's return_to is the page the user asked for.
	set := a.Rules.Current()
	described, u, derr := DescribeDecision(r)
	method := described.Method
	var out Outcome
	var span trace.Span
	var obs rules.StageObserver
	if a.Tracing != nil {
		var ctx context.Context
		ctx, span = a.Tracing.startRequest(described.Context(), "decision "+method, method, described.Header)
		described = described.WithContext(ctx)
		obs = a.Tracing.observer(ctx)
	}
	defer func() {
		d := time.Since(start)
		if span != nil {
			endRequest(span, &out, rec.status())
		}
		a.observer().Request("decisions", out.RuleID(), out.Decision(), rec.status(), d)
		log := a.log()
		if !infoEnabled(log) {
			return
		}
		f := logrus.Fields{
			"method":     method,
			"path":       u.Path,
			"host":       u.Host,
			"rule":       out.RuleID(),
			"decision":   out.Decision(),
			"status":     rec.status(),
			"subject":    out.Subject(),
			"latency_ms": float64(d.Microseconds()) / 1000,
		}
		out.logDenial(f)
		if id := traceID(span); id != "" {
			f["trace_id"] = id
		}
		logEntry(log, f).Info("decision")
	}()

	if derr != nil && set != nil {
		out = Refused(described, u, derr)
	} else {
		out = decide(set, described, u, decideOptions{observer: obs, revocations: a.Revocations})
	}
	if !out.Allowed() {
		out.WriteError(rec)
		return
	}
	writeAllowed(rec, r.Header, out.Session)
}

// writeAllowed answers an allowed decision: 200 with the headers the
// mutators set (and, when the cookie mutator set any, the merged Cookie
// header).
func writeAllowed(w http.ResponseWriter, client http.Header, s *pipeline.Session) {
	for k, v := range s.Header {
		// The noop mutator hands back the request's own headers: the
		// client's framing (Content-Length of its body) must not become
		// the framing of this empty answer.
		switch http.CanonicalHeaderKey(k) {
		case "Content-Length", "Transfer-Encoding":
			continue
		}
		w.Header()[http.CanonicalHeaderKey(k)] = append([]string(nil), v...)
	}
	if len(s.Cookies) > 0 {
		w.Header().Set("Cookie", mergeCookies(client.Values("Cookie"), s.Cookies))
	}
	w.WriteHeader(http.StatusOK)
}
