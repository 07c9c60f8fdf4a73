package pipeline

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
)

// ErrorBody is the JSON error document portcullis answers with, in the
// shape Oathkeeper (herodot) uses:
//
//	{"error":{"code":401,"status":"Unauthorized","message":"..."}}
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail is the inside of [ErrorBody].
type ErrorDetail struct {
	Code    int    `json:"code"`
	Status  string `json:"status"`
	Message string `json:"message"`
	// Reason is the error's cause, present only when verbose errors are
	// configured. Causes never contain credentials.
	Reason string `json:"reason,omitempty"`
}

// PrettyParam is the query parameter that asks any JSON answer to be
// indented: ?pretty (or ?pretty=true; ?pretty=false and ?pretty=0 do not).
const PrettyParam = "pretty"

// WantsPretty reports whether r asks for indented JSON with [PrettyParam].
// A nil request does not.
func WantsPretty(r *http.Request) bool {
	if r == nil || r.URL == nil {
		return false
	}
	q := r.URL.Query()
	if !q.Has(PrettyParam) {
		return false
	}
	switch strings.ToLower(q.Get(PrettyParam)) {
	case "false", "0", "no":
		return false
	}
	return true
}

// EncodeJSON writes v as one line of JSON (indented by two spaces when
// pretty), followed by a newline. Nothing is HTML-escaped: `<`, `>` and `&`
// stay literal, so a rule's `<.*>` reads as it is written. The answers carry
// a JSON content type and nosniff, so no browser renders them as HTML.
func EncodeJSON(w io.Writer, v any, pretty bool) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	if pretty {
		enc.SetIndent("", "  ")
	}
	return enc.Encode(v)
}

// WriteJSON answers v as JSON with status, indented when r asks for it.
func WriteJSON(w http.ResponseWriter, r *http.Request, status int, v any) {
	w.Header().Set("Content-Type", "application/json") // as WriteRequestError, and Oathkeeper
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = EncodeJSON(w, v, WantsPretty(r))
}

// WriteError answers err as JSON with its status. The message is the
// error's client-safe reason (or the status text); verbose adds the cause.
func WriteError(w http.ResponseWriter, err error, verbose bool) {
	WriteRequestError(w, nil, err, verbose)
}

// WriteRequestError is [WriteError] for an answer to r: indented when r
// asks for it.
func WriteRequestError(w http.ResponseWriter, r *http.Request, err error, verbose bool) {
	e := AsError(err)
	msg := e.Reason
	if msg == "" {
		msg = http.StatusText(e.Status)
	}
	body := ErrorBody{Error: ErrorDetail{Code: e.Status, Status: http.StatusText(e.Status), Message: msg}}
	if verbose && e.Cause != nil {
		body.Error.Reason = e.Cause.Error()
	}
	for k, v := range e.Header {
		w.Header()[k] = v
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(e.Status)
	_ = EncodeJSON(w, body, WantsPretty(r))
}
