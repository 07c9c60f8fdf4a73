package proxy

import (
	"errors"
	"net/http"
	"net/url"
	"time"

	"github.com/sirupsen/logrus"

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
	// tried is the URL matched, logged when no rule matched it.
	ruleID, decision, subject, tried := "", "allowed", "", ""
	method, u := r.Method, &url.URL{Path: "-"} // what the log shows of a refused description
	defer func() {
		d := time.Since(start)
		a.observer().Request("decisions", ruleID, decision, rec.status(), d)
		log := a.log()
		if !infoEnabled(log) {
			return
		}
		entry := logEntry(log, logrus.Fields{
			"method":     method,
			"path":       u.Path,
			"host":       u.Host,
			"rule":       ruleID,
			"decision":   decision,
			"status":     rec.status(),
			"subject":    subject,
			"latency_ms": float64(d.Microseconds()) / 1000,
		})
		if tried != "" {
			entry = entry.WithField("url", tried)
		}
		entry.Info("decision")
	}()

	set := a.Rules.Current()
	if set == nil {
		decision = "error"
		pipeline.WriteError(rec, pipeline.Unavailable("access rules are not loaded", nil), false)
		return
	}
	d, err := describeStrict(decisionInput(r))
	if err != nil {
		decision = "denied"
		pipeline.WriteError(rec, err, false)
		return
	}
	method, u = d.Method, d.URL
	// Stages and error handlers see the described request, not the call to
	// /decisions: a redirect's return_to is the page the user asked for.
	// Its URL is absolute (scheme and host as described), and the
	// X-Forwarded-* headers it was described by are its own.
	described := r.Clone(r.Context())
	described.Method, described.URL, described.Host = method, u, u.Host
	described.RequestURI = u.RequestURI()
	rule, groups, err := d.match(set)
	if err != nil {
		decision = decisionOf(err)
		if errors.Is(err, rules.ErrNoRule) {
			tried = rules.MatchURL(u)
		}
		answerError(rec, described, set.FallbackHandler(described, err), err)
		return
	}
	ruleID = rule.ID
	s := pipeline.NewSession(described, u, groups)
	if err := rule.Run(described, s); err != nil {
		decision, subject = decisionOf(err), s.Subject
		described = withoutCarriers(described, s)
		answerError(rec, described, rule.ErrorHandler(described, err), err)
		return
	}
	subject = s.Subject
	if a.Revocations != nil && a.Revocations.Revoked(s.SessionID, s.Subject) {
		decision = "denied"
		err := pipeline.Unauthorized("session revoked", nil)
		described = withoutCarriers(described, s)
		answerError(rec, described, rule.ErrorHandler(described, err), err)
		return
	}
	for k, v := range s.Header {
		// The noop mutator hands back the request's own headers: the
		// client's framing (Content-Length of its body) must not become
		// the framing of this empty answer.
		switch http.CanonicalHeaderKey(k) {
		case "Content-Length", "Transfer-Encoding":
			continue
		}
		rec.Header()[http.CanonicalHeaderKey(k)] = append([]string(nil), v...)
	}
	if len(s.Cookies) > 0 {
		rec.Header().Set("Cookie", mergeCookies(r.Header.Values("Cookie"), s.Cookies))
	}
	rec.WriteHeader(http.StatusOK)
}
