package proxy

import (
	"net/http"

	"github.com/portcullis-proxy/portcullis/pipeline"
)

// serveDecision answers /decisions/<path> with Oathkeeper's contract: it
// runs the one decision path for the request the call describes (method and
// Host of the call, or X-Forwarded-Method/-Proto/-Host/-Uri; see
// [DescribeDecision]) and answers 200 with the headers the mutators set, or
// the error handlers' answer. Stages and error handlers see the described
// request, not the call to /decisions: a redirect's return_to is the page
// the user asked for.
func (a *API) serveDecision(w http.ResponseWriter, r *http.Request) {
	x := a.path.begin(w)
	defer x.finish()
	described, u, err := DescribeDecision(r)
	if !x.decide(description{req: described, url: u, err: err, logPath: u.Path, logHost: u.Host}) {
		return
	}
	writeAllowed(x.rec, r.Header, x.out.Session)
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
