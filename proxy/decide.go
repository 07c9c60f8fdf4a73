package proxy

import (
	"errors"
	"net/http"
	"net/url"
	"strings"

	"github.com/portcullis-proxy/portcullis/internal/logfmt"
	"github.com/portcullis-proxy/portcullis/pipeline"
	"github.com/portcullis-proxy/portcullis/rules"
)

// outcome is what the one decision path made of a described request. Every
// front end (the reverse proxy, /decisions, gRPC ext_authz, explain) gets
// one from the same sequence and differs only in how it reads the request
// and writes the answer.
type outcome struct {
	// Rule is the rule that matched (nil when none, or several, did).
	Rule *rules.Compiled
	// Session is what the rule's stages found (nil when no rule matched).
	Session *pipeline.Session
	// Request is the described request as the stages and the error handler
	// see it; after a denial, query parameters that carried a credential
	// are removed from it (see withoutCarriers).
	Request *http.Request
	// URL is the URL rules were matched against (cleaned path, query kept).
	URL *url.URL
	// Err is nil when the request is allowed; otherwise the reason, with
	// its status ([pipeline.StatusOf]) and, for a stage's denial, a
	// [*rules.StageError] naming the handler.
	Err error
	// ErrorHandler answers Err: the first of the rule's (or, without a rule,
	// the fallback) handlers whose `when` matches; nil answers JSON.
	ErrorHandler pipeline.ErrorHandler

	refused bool // the front end could not describe the request
}

// reasonRulesNotLoaded is the 503 answering every request until the first
// rule set loads.
const reasonRulesNotLoaded = "access rules are not loaded"

// reasonSessionRevoked is the 401 denying a request whose session or
// subject was revoked.
const reasonSessionRevoked = "session revoked"

// description is a request as its front end read it, ready for the
// decision path.
type description struct {
	// req is the request the stages and error handlers see, with the
	// context the front end serves it under. decide does not modify it.
	req *http.Request
	// url is what rules match (cleaned path, query kept; RawPath the path
	// as received when it held escapes). It may be nil when err is set.
	url *url.URL
	// err, when set, refuses the description (a 400 the front end's
	// checks found: the proxy's path check, the decision front ends'
	// describeStrict): no rule is asked, and it is answered as JSON.
	err error
	// logPath and logHost are what the log line shows of the request.
	logPath, logHost string
	// absolute, when set, is the scheme and host the error handlers see
	// in the request's URL after a stage's denial ([errorView]: the proxy
	// makes its URL absolute).
	absolute *forwardedView
}

// decideOptions are what a front end adds to the decision path.
type decideOptions struct {
	// observer is told about the match and each stage; nil: nothing.
	observer rules.StageObserver
	// revocations, when set, denies (401) an allowed request whose session
	// or subject was revoked, here or on another replica, although a cache
	// or a still-valid token admitted it.
	revocations SessionRevocations
}

// decide is the one decision path for the request d describes: its
// refusal when the front end could not describe it; otherwise rules loaded
// (503 until they are), exactly one rule ([rules.Set.Match]; when
// d.url.RawPath holds the path as received, the same rule must match it
// too, or the answer is a 400, reasonAmbiguousPath), the rule's stages
// ([rules.Compiled.RunObserved], telling opts.observer), the revocation
// check and, on a denial, the removal of credential carriers and the
// choice of error handler.
func decide(set *rules.Set, d description, opts decideOptions) outcome {
	r, u, o := d.req, d.url, opts.observer
	if d.err != nil {
		if u == nil {
			u = &url.URL{Path: "-"} // what the log shows of a refused description
		}
		return outcome{Request: r, URL: u, Err: d.err, refused: true}
	}
	out := outcome{Request: r, URL: u}
	if set == nil {
		out.Err = pipeline.Unavailable(reasonRulesNotLoaded, nil)
		return out
	}
	var matched func(string, error)
	if mo, ok := o.(matchObserver); ok {
		matched = mo.MatchStart()
	}
	rule, groups, err := set.Match(r.Method, u)
	if err == nil && u.RawPath != "" && !rule.MatchesPath(u, u.RawPath) {
		// /%67uest is /guest only to an application that decodes before
		// routing.
		rule, groups, err = nil, nil, badRequest(reasonAmbiguousPath)
	}
	if matched != nil {
		id := ""
		if rule != nil {
			id = rule.ID
		}
		matched(id, err)
	}
	if err != nil {
		out.Err, out.ErrorHandler = err, set.FallbackHandler(r, err)
		return out
	}
	out.Rule = rule
	out.Session = pipeline.NewSession(r, u, groups)
	err = rule.RunObserved(r, out.Session, o)
	if err == nil && opts.revocations != nil && opts.revocations.Revoked(out.Session.SessionID, out.Session.Subject) {
		err = pipeline.Unauthorized(reasonSessionRevoked, nil)
	}
	if err != nil {
		out.Err = err
		out.Request = withoutCarriers(r, out.Session)
		if d.absolute != nil {
			out.Request = errorView(out.Request, *d.absolute)
		}
		out.ErrorHandler = rule.ErrorHandler(out.Request, err)
	}
	return out
}

// Allowed reports whether the request may proceed.
func (o *outcome) Allowed() bool { return o.Err == nil }

// Decision is the outcome as the request log and metrics name it:
// "allowed", "denied" (401, 403, 404 and 400s for refused paths) or "error".
func (o *outcome) Decision() string {
	if o.Err == nil {
		return "allowed"
	}
	if o.refused {
		return "denied"
	}
	return decisionOf(o.Err)
}

// RuleID is the matched rule's id, "" when none matched.
func (o *outcome) RuleID() string {
	if o.Rule == nil {
		return ""
	}
	return o.Rule.ID
}

// Subject is the subject the authenticator found, "" when none did.
func (o *outcome) Subject() string {
	if o.Session == nil {
		return ""
	}
	return o.Session.Subject
}

// WriteError writes the denial with the chosen error handler, or as JSON
// when none was chosen. It must only be called when Err is set.
func (o *outcome) WriteError(w http.ResponseWriter) {
	answerError(w, o.Request, o.ErrorHandler, o.Err)
}

// denial describes, for the request log, who decided a denial: the
// authenticator responsible ("none responsible" when every authenticator
// passed; "" when no rule matched), the authorizer's verdict ("not reached",
// "<name>: allowed", "<name>: denied"), the mutator that failed, and the
// reason (the error's client-safe reason and its cause, which by
// [pipeline.Error]'s contract never holds a credential). All are "" for an
// allowed request.
type denial struct {
	Authenticator string
	Authorizer    string
	Mutator       string
	Reason        string
}

// Denial returns who decided the denial; the zero denial when allowed.
func (o *outcome) Denial() denial {
	if o.Err == nil {
		return denial{}
	}
	d := denial{Reason: reasonOf(o.Err)}
	if o.Rule == nil {
		return d
	}
	authz := o.Rule.Rule.Authorizer.Handler
	var se *rules.StageError
	if !errors.As(o.Err, &se) {
		// Every stage allowed it; the session was revoked since.
		d.Authenticator, d.Authorizer = o.Session.Authenticator, authz+": allowed"
		return d
	}
	switch se.Stage {
	case rules.StageAuthenticator:
		d.Authenticator, d.Authorizer = se.Handler, "not reached"
		if se.Handler == "" {
			d.Authenticator = "none responsible"
		}
	case rules.StageAuthorizer:
		d.Authenticator, d.Authorizer = o.Session.Authenticator, authz+": denied"
	case rules.StageMutator:
		d.Authenticator, d.Authorizer, d.Mutator = o.Session.Authenticator, authz+": allowed", se.Handler
	}
	return d
}

// reasonOf is err's reason and cause on one line.
func reasonOf(err error) string {
	e := pipeline.AsError(err)
	msg := e.Reason
	if msg == "" {
		msg = http.StatusText(e.Status)
	}
	if e.Cause != nil {
		msg += ": " + e.Cause.Error()
	}
	return strings.ReplaceAll(msg, "\n", " ")
}

// logDenial adds the denial's fields to a request log line: authenticator,
// authorizer, mutator (when one failed) and reason.
func (o *outcome) logDenial(f []logfmt.Field) []logfmt.Field {
	if o.Err == nil {
		return f
	}
	d := o.Denial()
	f = append(f, logfmt.String("reason", d.Reason))
	if d.Authenticator != "" {
		f = append(f, logfmt.String("authenticator", d.Authenticator))
	}
	if d.Authorizer != "" {
		f = append(f, logfmt.String("authorizer", d.Authorizer))
	}
	if d.Mutator != "" {
		f = append(f, logfmt.String("mutator", d.Mutator))
	}
	return f
}

// answerError writes err with the chosen error handler, or as JSON when no
// handler's `when` matched.
func answerError(w http.ResponseWriter, r *http.Request, eh pipeline.ErrorHandler, err error) {
	if eh == nil {
		pipeline.WriteError(w, err, false)
		return
	}
	eh.HandleError(w, r, err)
}

func decisionOf(err error) string {
	switch pipeline.StatusOf(err) {
	case http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound:
		return "denied"
	default:
		return "error"
	}
}
