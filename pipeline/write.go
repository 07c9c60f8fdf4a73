package pipeline

import (
	"encoding/json"
	"net/http"
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

// WriteError answers err as JSON with its status. The message is the
// error's client-safe reason (or the status text); verbose adds the cause.
func WriteError(w http.ResponseWriter, err error, verbose bool) {
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
	_ = json.NewEncoder(w).Encode(body)
}
