package pipeline

import (
	"fmt"
	"mime"
	"net"
	"net/http"
	"strings"
)

// When is one condition of an error handler's `when` list, in Oathkeeper's
// shape. A handler whose list is empty handles every error; otherwise it
// handles an error when any one condition matches: the error's status name
// is listed in Error (or Error is empty) and the request matches Request.
type When struct {
	Error   []string     `json:"error,omitempty"`
	Request *WhenRequest `json:"request,omitempty"`
}

// WhenRequest conditions on the request.
type WhenRequest struct {
	RemoteIP *WhenRemoteIP `json:"remote_ip,omitempty"`
	Header   *WhenHeader   `json:"header,omitempty"`
	// CIDR is a shorthand for remote_ip.match.
	CIDR []string `json:"cidr,omitempty"`
}

// WhenRemoteIP matches the client address against CIDR ranges.
type WhenRemoteIP struct {
	Match                     []string `json:"match"`
	RespectForwardedForHeader bool     `json:"respect_forwarded_for_header"`
}

// WhenHeader matches request media types.
type WhenHeader struct {
	ContentType []string `json:"content_type,omitempty"`
	Accept      []string `json:"accept,omitempty"`
}

// Whens is a handler's `when` list, compiled once.
type Whens struct {
	list []compiledWhen
}

type compiledWhen struct {
	errors      map[string]bool
	contentType []string
	accept      []string
	nets        []*net.IPNet
	forwarded   bool
	hasRemoteIP bool
}

// CompileWhens validates and prepares a `when` list.
func CompileWhens(ws []When) (Whens, error) {
	var out Whens
	for i, w := range ws {
		c := compiledWhen{errors: map[string]bool{}}
		for _, e := range w.Error {
			c.errors[e] = true
		}
		if r := w.Request; r != nil {
			if r.Header != nil {
				c.contentType = r.Header.ContentType
				c.accept = r.Header.Accept
			}
			cidrs := r.CIDR
			if r.RemoteIP != nil {
				cidrs = append(append([]string{}, cidrs...), r.RemoteIP.Match...)
				c.forwarded = r.RemoteIP.RespectForwardedForHeader
			}
			for _, s := range cidrs {
				_, n, err := net.ParseCIDR(s)
				if err != nil {
					return Whens{}, fmt.Errorf("when[%d]: invalid CIDR %q", i, s)
				}
				c.nets = append(c.nets, n)
				c.hasRemoteIP = true
			}
		}
		out.list = append(out.list, c)
	}
	return out, nil
}

// Empty reports whether there are no conditions (the handler handles all).
func (w Whens) Empty() bool { return len(w.list) == 0 }

// Matches reports whether err for r satisfies the list.
func (w Whens) Matches(r *http.Request, err error) bool {
	if len(w.list) == 0 {
		return true
	}
	id := StatusID(StatusOf(err))
	for _, c := range w.list {
		if len(c.errors) > 0 && !c.errors[id] {
			continue
		}
		if c.matchesRequest(r) {
			return true
		}
	}
	return false
}

func (c compiledWhen) matchesRequest(r *http.Request) bool {
	if len(c.contentType) > 0 {
		ct := r.Header.Get("Content-Type")
		if ct == "" {
			ct = "application/octet-stream"
		}
		if !mediaMatches(stripParams(ct), c.contentType) {
			return false
		}
	}
	if len(c.accept) > 0 {
		a := r.Header.Get("Accept")
		if a == "" {
			a = "application/octet-stream"
		}
		if !mediaMatches(a, c.accept) {
			return false
		}
	}
	if c.hasRemoteIP {
		candidates := []string{}
		if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
			candidates = append(candidates, host)
		}
		if c.forwarded {
			for _, f := range strings.Split(r.Header.Get("X-Forwarded-For"), ",") {
				if f = strings.TrimSpace(f); f != "" {
					candidates = append(candidates, f)
				}
			}
		}
		for _, s := range candidates {
			ip := net.ParseIP(s)
			for _, n := range c.nets {
				if ip != nil && n.Contains(ip) {
					return true
				}
			}
		}
		return false
	}
	return true
}

func stripParams(list string) string {
	parts := strings.Split(list, ",")
	for i, p := range parts {
		if mt, _, err := mime.ParseMediaType(strings.TrimSpace(p)); err == nil {
			parts[i] = mt
		}
	}
	return strings.Join(parts, ",")
}

// mediaMatches reports whether any media range the request lists (an Accept
// or Content-Type value, q=0 entries excluded) matches one of the configured
// types. A configured "*/*" or "type/*" matches broadly; a wildcard in the
// request only matches the same wildcard configured, so "Accept: */*" does not
// pass for "text/html" (curl is not a browser).
func mediaMatches(request string, configured []string) bool {
	for _, part := range strings.Split(request, ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		if q, ok := params["q"]; ok && (q == "0" || q == "0.0" || q == "0.00" || q == "0.000") {
			continue
		}
		for _, m := range configured {
			m = strings.ToLower(strings.TrimSpace(m))
			switch {
			case m == "*/*":
				return true
			case strings.HasSuffix(m, "/*") && strings.HasPrefix(mt, strings.TrimSuffix(m, "*")):
				return true
			case mt == m:
				return true
			}
		}
	}
	return false
}
