package proxy

import (
	"github.com/portcullis-proxy/portcullis/pipeline"
	"net/http"
	"net/url"
	"path"
	"strings"
)

// cleanPath resolves dot segments and repeated slashes the way most
// upstream routers do, keeping a trailing slash. Rules are matched against
// the cleaned path and the cleaned path is what goes upstream, so a rule
// cannot be bypassed by spelling a path differently (/a/../admin, //admin,
// /admin/./ all become /admin or /admin/).
func cleanPath(p string) string {
	if p == "" {
		return "/"
	}
	if p[0] != '/' {
		p = "/" + p
	}
	c := path.Clean(p)
	if strings.HasSuffix(p, "/") && c != "/" {
		c += "/"
	}
	return c
}

// requestURL is the URL rules match for a request the proxy received:
// scheme from the connection (or X-Forwarded-Proto when trusted), the Host
// header (or X-Forwarded-Host when trusted), the cleaned path and the query.
func requestURL(r *http.Request, trustForwarded bool) *url.URL {
	u := &url.URL{Scheme: "http", Host: r.Host, Path: cleanPath(r.URL.Path), RawQuery: r.URL.RawQuery}
	if r.TLS != nil {
		u.Scheme = "https"
	}
	if trustForwarded {
		if p := firstValue(r.Header.Get("X-Forwarded-Proto")); p == "http" || p == "https" {
			u.Scheme = p
		}
		if h := firstValue(r.Header.Get("X-Forwarded-Host")); h != "" {
			u.Host = h
		}
	}
	return u
}

func firstValue(v string) string {
	if i := strings.IndexByte(v, ','); i >= 0 {
		v = v[:i]
	}
	return strings.TrimSpace(v)
}

// decisionURL is the URL the decision API evaluates: the request it
// describes, taken from X-Forwarded-Method/-Proto/-Host/-Uri when present
// (the query of X-Forwarded-Uri is kept for templates but never matched),
// else from the call itself with the /decisions prefix removed.
func decisionURL(r *http.Request) (method string, u *url.URL) {
	method = r.Method
	if m := r.Header.Get("X-Forwarded-Method"); m != "" {
		method = strings.ToUpper(m)
	}
	u = &url.URL{Scheme: "http", Host: r.Host}
	if r.TLS != nil {
		u.Scheme = "https"
	}
	if p := firstValue(r.Header.Get("X-Forwarded-Proto")); p != "" {
		u.Scheme = p
	}
	if h := firstValue(r.Header.Get("X-Forwarded-Host")); h != "" {
		u.Host = h
	}
	if fu := r.Header.Get("X-Forwarded-Uri"); fu != "" {
		u.Path, u.RawQuery = describedPath(fu)
		return method, u
	}
	u.Path = cleanPath(strings.TrimPrefix(r.URL.Path, "/decisions"))
	u.RawQuery = r.URL.RawQuery
	return method, u
}

// describedPath splits a request target a front end describes
// (X-Forwarded-Uri, ext_authz's :path) into the cleaned, unescaped path that
// rules match and the raw query, which is kept for templates but never
// matched.
func describedPath(target string) (path, rawQuery string) {
	p, q, _ := strings.Cut(target, "?")
	if dp, err := url.PathUnescape(p); err == nil {
		p = dp
	}
	return cleanPath(p), q
}

// errAmbiguousPath refuses paths that some upstreams resolve differently
// from portcullis: a backslash (a separator to some servers) and dot
// segments with path parameters ("..;", ".;", which Java servlet containers
// resolve as ".." and "."). Matching them as written would let a request
// reach an upstream path no rule allowed.
var errAmbiguousPath = pipeline.NewError(http.StatusBadRequest, "ambiguous request path", nil)

// checkPath returns errAmbiguousPath for a path upstreams may not agree on.
func checkPath(p string) error {
	if strings.ContainsAny(p, "\\\x00") {
		return errAmbiguousPath
	}
	for _, seg := range strings.Split(p, "/") {
		if strings.HasPrefix(seg, "..;") || strings.HasPrefix(seg, ".;") {
			return errAmbiguousPath
		}
	}
	return nil
}
