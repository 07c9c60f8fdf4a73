package proxy

import (
	"bufio"
	"errors"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/sirupsen/logrus"
	"go.opentelemetry.io/otel/trace"

	"github.com/portcullis-proxy/portcullis/internal/logfmt"
	"github.com/portcullis-proxy/portcullis/rules"
)

// DecisionOptions are what every front end over the one decision path
// shares: the reverse proxy ([NewHandler]), /decisions ([NewAPI]) and gRPC
// ext_authz ([NewExtAuthz]). Zero fields take the documented defaults; a
// constructor copies them and never changes them afterwards.
type DecisionOptions struct {
	// Rules supplies the rule set; required (a constructor panics without
	// it). Until it returns a set, every request the front end can
	// describe is answered 503.
	Rules RuleSource
	// Log receives one line per request at info level ("request" from the
	// proxy, "decision" from /decisions, "check" from ext_authz); nil
	// discards. The line never holds a credential: the path without its
	// query, and a denial's reason by [pipeline.Error]'s contract.
	Log logrus.FieldLogger
	// Observer is told about every request; nil discards.
	Observer Observer
	// Revocations, when set, refuses requests whose session or subject was
	// revoked, here or on another replica (401, even where a cache or a
	// still-valid token admitted it). The proxy also applies the rules'
	// revoke_session_on_success through it.
	Revocations SessionRevocations
	// Tracing makes a span per request, with children for the rule match
	// and each stage (the proxy adds the upstream round trip and the
	// tunnel); nil makes none.
	Tracing *Tracing
}

// frontEnd is how one front end names itself in the request's metric, span
// and log line.
type frontEnd struct {
	metric string // [Observer.Request]'s front end: "proxy", "decisions", "grpc"
	span   string // the request span's name, before the method
	line   string // the log line's message
}

// decisionPath is the one sequence every front end runs for a request it
// has described: the request's span, match → run → scrub → the denial's
// answer ([exchange.decide]), then the span's end, the metric and the log
// line ([exchange.finish]). A front end's constructor builds it once
// from its [DecisionOptions]; it never changes afterwards.
type decisionPath struct {
	frontEnd
	rules       RuleSource
	log         logrus.FieldLogger
	lines       requestLog
	observer    Observer
	revocations SessionRevocations
	tracing     *Tracing
}

// newDecisionPath applies o's defaults for the front end fe. It panics when
// o.Rules is nil: a front end without rules is a wiring mistake, not a
// state to serve in.
func newDecisionPath(o DecisionOptions, fe frontEnd) decisionPath {
	if o.Rules == nil {
		panic("proxy: DecisionOptions.Rules is required")
	}
	p := decisionPath{frontEnd: fe, rules: o.Rules, log: o.Log, observer: o.Observer, revocations: o.Revocations, tracing: o.Tracing}
	if p.observer == nil {
		p.observer = nopObserver{}
	}
	if p.log == nil {
		l := logrus.New()
		l.Out = discard{}
		l.Formatter = &logfmt.Text{}
		p.log = l
	}
	p.lines = newRequestLog(p.log, fe.line)
	return p
}

// exchange is one request on a front end, from its arrival to its log line.
// It lives on the front end's stack: begin it first, defer finish, decide,
// and write the allowed answer.
type exchange struct {
	path  *decisionPath
	start time.Time
	// rec is the answer's writer; its status is what the span, the metric
	// and the log line report.
	rec  *recorder
	out  outcome
	span trace.Span
	// method, logPath and logHost are the log line's.
	method, logPath, logHost string
}

// begin starts an exchange whose answer is written to w.
func (p *decisionPath) begin(w http.ResponseWriter) exchange {
	return p.beginOn(&recorder{ResponseWriter: w})
}

// beginOn starts an exchange whose answer is written through rec, a
// recorder of the writer the front end allocated together with the rest
// of what its request needs.
func (p *decisionPath) beginOn(rec *recorder) exchange {
	return exchange{path: p, start: time.Now(), rec: rec}
}

// decide runs the decision path for d: the request's span (its context
// becomes the described request's), the refusal of a description the front
// end could not make or the rule's outcome, and, on a denial, the answer of
// the chosen error handler. It reports whether the request is allowed; the
// front end then writes the allowed answer from x.out (whose Request
// carries the span's context).
func (x *exchange) decide(d description) bool {
	p := x.path
	x.method, x.logPath, x.logHost = d.req.Method, d.logPath, d.logHost
	var obs rules.StageObserver
	if p.tracing != nil {
		ctx, span := p.tracing.startRequest(d.req.Context(), p.span+d.req.Method, d.req.Method, d.req.Header)
		x.span, d.req = span, d.req.WithContext(ctx)
		obs = p.tracing.observer(ctx)
	}
	x.out = decide(p.rules.Current(), d, decideOptions{observer: obs, revocations: p.revocations})
	if !x.out.Allowed() {
		x.out.WriteError(x.rec)
		return false
	}
	return true
}

// finish ends the request's span and reports the exchange to the observer
// and the log. Deferred by the front end, it also runs when the answer
// panics (httputil aborts a broken response body with
// [http.ErrAbortHandler]).
func (x *exchange) finish() {
	p := x.path
	now := time.Now()
	d := now.Sub(x.start)
	status := x.rec.status()
	if x.span != nil {
		endRequest(x.span, &x.out, status)
	}
	p.observer.Request(p.metric, x.out.RuleID(), x.out.Decision(), status, d)
	if !p.lines.enabled() {
		return
	}
	// The line's fields, on the stack: every line has the first eight,
	// a denial up to four more, then the trace and the upstream's error.
	// The formatter writes them sorted by key; the first eight are listed
	// in that order already, so that its sort has nothing to move.
	var fs [14]logfmt.Field
	f := append(fs[:0],
		logfmt.String("decision", x.out.Decision()),
		logfmt.String("host", x.logHost),
		logfmt.Float("latency_ms", float64(d.Microseconds())/1000),
		logfmt.String("method", x.method),
		logfmt.String("path", x.logPath),
		logfmt.String("rule", x.out.RuleID()),
		logfmt.Int("status", status),
		logfmt.String("subject", x.out.Subject()),
	)
	f = x.out.logDenial(f)
	if id := traceID(x.span); id != "" {
		f = append(f, logfmt.String("trace_id", id))
	}
	if x.rec.upstreamErr != nil {
		f = append(f, logfmt.String("upstream_error", x.rec.upstreamErr.Error()))
	}
	p.lines.write(now, f)
}

// debugWriter writes each line it is given to l at debug level.
type debugWriter struct{ l logrus.FieldLogger }

func (d debugWriter) Write(p []byte) (int, error) {
	d.l.Debug(strings.TrimSpace(string(p)))
	return len(p), nil
}

// recorder notes the status written, for the request log and metrics, and
// passes hijacking and flushing through.
type recorder struct {
	http.ResponseWriter
	code        int
	upstreamErr error
}

func (r *recorder) WriteHeader(code int) {
	if r.code == 0 {
		r.code = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.code == 0 {
		r.code = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

func (r *recorder) status() int {
	if r.code == 0 {
		return http.StatusOK
	}
	return r.code
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// Flush implements http.Flusher.
func (r *recorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Hijack implements http.Hijacker; a hijacked connection is logged as 101.
func (r *recorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	hj, ok := r.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("connection cannot be hijacked")
	}
	if r.code == 0 {
		r.code = http.StatusSwitchingProtocols
	}
	return hj.Hijack()
}
