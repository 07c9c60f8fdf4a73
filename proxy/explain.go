package proxy

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"

	"github.com/portcullis-proxy/portcullis/pipeline"
	"github.com/portcullis-proxy/portcullis/rules"
)

// Explanation is the account of one decision, step by step, as [Explain]
// makes it. It never holds a credential: query values are left out, and
// the values of headers and cookies the mutators set are redacted where
// they may carry a secret (see [redactHeader]).
type Explanation struct {
	// Method and URL are the request as rules matched it; URL is
	// scheme://host/path, and Query lists the query's parameter names.
	Method string   `json:"method"`
	URL    string   `json:"url"`
	Query  []string `json:"query,omitempty"`
	// Candidates says, for every rule, whether it matched and why not
	// (absent when the rules are not loaded or the path was refused).
	Candidates []rules.MatchReport `json:"candidates,omitempty"`
	// Rule is the rule that matched, "" when none or several did.
	Rule string `json:"rule,omitempty"`
	// Stages are the rule's handlers in the order they ran.
	Stages []ExplainedStage `json:"stages,omitempty"`
	// Decision is "allowed", "denied" or "error"; Status the HTTP status
	// of the answer; Reason why it was not allowed.
	Decision string `json:"decision"`
	Status   int    `json:"status"`
	Reason   string `json:"reason,omitempty"`
	// Subject is the subject the authenticator found.
	Subject string `json:"subject,omitempty"`
	// Headers and Cookies are what the mutators would set upstream (on an
	// allowed request), secrets redacted.
	Headers map[string]string `json:"headers,omitempty"`
	Cookies map[string]string `json:"cookies,omitempty"`
}

// ExplainedStage is one handler of the rule and what it decided.
type ExplainedStage struct {
	Stage   rules.Stage `json:"stage"`
	Handler string      `json:"handler"`
	// Outcome is "accepted", "not responsible" or "rejected" for an
	// authenticator; "allowed" or "denied" for the authorizer; "ok" or
	// "failed" for a mutator.
	Outcome string `json:"outcome"`
	// Detail is what the stage found: the subject, the headers a mutator
	// set, or the reason of a refusal.
	Detail string `json:"detail,omitempty"`
}

// Explain runs the one decision path for r, matched as u, and reports each
// step: which rules matched and why the others did not, each stage in order
// with its outcome, and the answer. It has the effects the decision has
// (identity providers and remote authorizers are asked).
func Explain(set *rules.Set, r *http.Request, u *url.URL) Explanation {
	return explain(set, description{req: r, url: u})
}

// ExplainDecision explains the decision /decisions would make for the call
// r: the request it describes (see [DescribeDecision]) run through
// [Explain], or the refusal of an ambiguous description.
func ExplainDecision(set *rules.Set, r *http.Request) Explanation {
	described, u, err := DescribeDecision(r)
	return explain(set, description{req: described, url: u, err: err})
}

// explain is Explain for the request d describes, whose description may
// have been refused.
func explain(set *rules.Set, d description) Explanation {
	r, u := d.req, d.url
	ex := Explanation{Method: r.Method, URL: rules.MatchURL(u)}
	for k := range u.Query() {
		ex.Query = append(ex.Query, k)
	}
	slices.Sort(ex.Query)
	rec := &stageRecorder{}
	out := decide(set, d, decideOptions{observer: rec})
	if set != nil && !out.refused {
		ex.Candidates = set.Explain(r.Method, u)
	}
	ex.Rule, ex.Stages, ex.Decision, ex.Subject = out.RuleID(), rec.stages, out.Decision(), out.Subject()
	if !out.Allowed() {
		w := &bufferedResponse{header: http.Header{}}
		out.WriteError(w)
		ex.Status, ex.Reason = w.code, reasonOf(out.Err)
		if ex.Status == 0 {
			ex.Status = http.StatusOK
		}
		return ex
	}
	ex.Status = http.StatusOK
	if len(out.Session.Header) > 0 {
		ex.Headers = map[string]string{}
		for k, v := range out.Session.Header {
			ex.Headers[http.CanonicalHeaderKey(k)] = redactHeader(k, strings.Join(v, ", "))
		}
	}
	if len(out.Session.Cookies) > 0 {
		ex.Cookies = map[string]string{}
		for k, v := range out.Session.Cookies {
			ex.Cookies[k] = redacted(v)
		}
	}
	return ex
}

// stageRecorder is the [rules.StageObserver] of Explain.
type stageRecorder struct{ stages []ExplainedStage }

func (sr *stageRecorder) StageStart(stage rules.Stage, handler string, _ *http.Request, s *pipeline.Session) func(error) {
	before := map[string]string{}
	for k, v := range s.Header {
		before[k] = strings.Join(v, ", ")
	}
	return func(err error) {
		st := ExplainedStage{Stage: stage, Handler: handler}
		switch {
		case errors.Is(err, pipeline.ErrNotResponsible):
			st.Outcome, st.Detail = "not responsible", "found no credential of its kind"
		case err != nil:
			st.Outcome, st.Detail = map[rules.Stage]string{rules.StageAuthenticator: "rejected", rules.StageAuthorizer: "denied", rules.StageMutator: "failed"}[stage], reasonOf(err)
		case stage == rules.StageAuthenticator:
			st.Outcome, st.Detail = "accepted", fmt.Sprintf("subject %q", s.Subject)
		case stage == rules.StageAuthorizer:
			st.Outcome = "allowed"
		default:
			st.Outcome = "ok"
			var set []string
			for k, v := range s.Header {
				if val := strings.Join(v, ", "); before[k] != val {
					set = append(set, http.CanonicalHeaderKey(k)+": "+redactHeader(k, val))
				}
			}
			slices.Sort(set)
			if len(set) > 0 {
				st.Detail = "sets " + strings.Join(set, "; ")
			}
		}
		sr.stages = append(sr.stages, st)
	}
}

// secretHeader matches header names whose values are credentials.
var secretHeader = regexp.MustCompile(`(?i)(authorization|cookie|token|secret|session|password|api-?key|jwt|assertion|credential)`)

// jwtLike matches a value shaped like a JSON Web Token (or any three
// base64url parts joined by dots).
var jwtLike = regexp.MustCompile(`[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}`)

// redactHeader returns value, or a redaction when the header's name says it
// carries a credential or the value looks like a token.
func redactHeader(name, value string) string {
	if secretHeader.MatchString(name) || jwtLike.MatchString(value) {
		return redacted(value)
	}
	return value
}

func redacted(v string) string { return fmt.Sprintf("[redacted, %d bytes]", len(v)) }

// ExplainRequest is the JSON body an explain endpoint accepts: the request
// to explain, as a client would send it to the proxy.
type ExplainRequest struct {
	Method     string            `json:"method"`
	URL        string            `json:"url"`
	Headers    map[string]string `json:"headers"`
	Body       string            `json:"body"`
	RemoteAddr string            `json:"remote_addr"`
}

// ExplainHandler answers POST requests whose JSON body is an
// [ExplainRequest] with the [Explanation] of that request's decision. A body
// that does not describe a request is a 400 with a JSON error. It must be
// served only behind an access check (the admin token): an explanation
// says which rules exist and why a request fails.
func ExplainHandler(src RuleSource) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			pipeline.WriteError(w, pipeline.NewError(http.StatusMethodNotAllowed, "use POST with a JSON request description", nil), false)
			return
		}
		var er ExplainRequest
		dec := json.NewDecoder(io.LimitReader(r.Body, 1<<20))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&er); err != nil {
			pipeline.WriteError(w, pipeline.Errorf(http.StatusBadRequest, "request body: %v", err), false)
			return
		}
		call, err := er.decisionCall(r)
		if err != nil {
			pipeline.WriteError(w, err, false)
			return
		}
		writeJSON(w, http.StatusOK, ExplainDecision(src.Current(), call))
	})
}

// decisionCall turns the description into the call to /decisions that
// describes it (X-Forwarded-Method, -Proto, -Host and -Uri), with parent's
// context.
func (er ExplainRequest) decisionCall(parent *http.Request) (*http.Request, error) {
	target, err := url.Parse(er.URL)
	if err != nil || (target.Scheme != "http" && target.Scheme != "https") || target.Host == "" {
		return nil, pipeline.Errorf(http.StatusBadRequest, "url: %q is not an absolute http(s) URL", er.URL)
	}
	method := strings.ToUpper(er.Method)
	if method == "" {
		method = http.MethodGet
	}
	r, err := http.NewRequestWithContext(parent.Context(), method, "/decisions", strings.NewReader(er.Body))
	if err != nil {
		return nil, pipeline.Errorf(http.StatusBadRequest, "method: %v", err)
	}
	for k, v := range er.Headers {
		r.Header.Set(k, v)
	}
	r.Header.Set("X-Forwarded-Method", method)
	r.Header.Set("X-Forwarded-Proto", target.Scheme)
	r.Header.Set("X-Forwarded-Host", target.Host)
	r.Header.Set("X-Forwarded-Uri", target.EscapedPath()+queryPart(target))
	r.Host = target.Host
	r.RemoteAddr = parent.RemoteAddr
	if er.RemoteAddr != "" {
		r.RemoteAddr = er.RemoteAddr
	}
	return r, nil
}

// queryPart is "?" and u's raw query, or "" without one.
func queryPart(u *url.URL) string {
	if u.RawQuery == "" && !u.ForceQuery {
		return ""
	}
	return "?" + u.RawQuery
}

// DescribeDecision is the request a call to /decisions describes and the URL
// rules match for it, by the one strict description of every decision front
// end (describeStrict): the method, scheme, host and target from
// X-Forwarded-Method/-Proto/-Host/-Uri (or the call itself), the call's
// other headers. The described request's URL is absolute. An ambiguous
// description is an error with status 400; r and a placeholder URL are then
// returned for the log line.
func DescribeDecision(r *http.Request) (*http.Request, *url.URL, error) {
	d, err := describeStrict(decisionInput(r))
	if err != nil {
		return r, &url.URL{Path: "-"}, err
	}
	described := r.Clone(r.Context())
	described.Method, described.URL, described.Host = d.Method, d.URL, d.URL.Host
	described.RequestURI = d.URL.RequestURI()
	return described, d.URL, nil
}
