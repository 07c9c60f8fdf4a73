package proxy

import (
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

// forwardedView is what the proxy believes about how the client reached
// it, for the upstream's X-Forwarded-* headers, the tunnel's same-origin
// check and error handlers: the scheme and host the request was addressed
// to, and whether the client's X-Forwarded-* headers are a trusted load
// balancer's.
type forwardedView struct {
	trusted bool
	proto   string // "http" or "https": the connection's, or a trusted X-Forwarded-Proto
	host    string // the Host header, or a trusted X-Forwarded-Host
}

// requestURL sets u to the URL rules match for a request the proxy
// received and returns what the proxy believes about its forwarding. After
// an error u holds nothing to read.
//
// The scheme is "https" for a TLS connection or, as in Oathkeeper, when
// X-Forwarded-Proto says so, trusted or not (it selects between a rule's
// http:// and https:// forms; it grants nothing a client could not get by
// connecting over TLS). The host is the Host header or, with
// matchForwardedHost and trustForwarded, X-Forwarded-Host. The path is
// cleaned; the query is kept.
//
// A Host, an X-Forwarded-Proto, or a trusted X-Forwarded-Host that is not
// exactly one valid value is a 400 (see describeStrict), so nothing but a
// host lands in the host part of the matched URL and a list is never read
// as its first value. An untrusted X-Forwarded-Host is not looked at.
func requestURL(u *url.URL, r *http.Request, trustForwarded, matchForwardedHost bool) (forwardedView, error) {
	fv := forwardedView{trusted: trustForwarded, proto: "http", host: r.Host}
	if r.TLS != nil {
		fv.proto = "https"
	}
	if r.Host != "" && !validHostPort(r.Host) {
		return fv, badRequest(reasonBadHostHeader)
	}
	*u = url.URL{Scheme: fv.proto, Host: r.Host, Path: cleanPath(r.URL.Path), RawQuery: r.URL.RawQuery}
	if vs := r.Header.Values("X-Forwarded-Proto"); len(vs) > 0 {
		p, err := forwardedProto(vs)
		if err != nil {
			return fv, err
		}
		if r.TLS == nil {
			u.Scheme = p
		}
		if trustForwarded {
			fv.proto = p
		}
	}
	if !trustForwarded {
		return fv, nil
	}
	if vs := r.Header.Values("X-Forwarded-Host"); len(vs) > 0 {
		h, err := forwardedHost(vs)
		if err != nil {
			return fv, err
		}
		fv.host = h
		if matchForwardedHost {
			u.Host = h
		}
	}
	return fv, nil
}

// decisionInput gathers what a call to /decisions says about the request
// to decide on, for describeStrict: X-Forwarded-Method/-Proto/-Host/-Uri
// when present, else the call's own method, scheme, Host and target with
// the /decisions prefix removed. Nothing is decoded or cleaned here.
func decisionInput(r *http.Request) describedInput {
	in := describedInput{
		Method:        r.Method,
		Proto:         r.Header.Values("X-Forwarded-Proto"),
		DefaultScheme: "http",
		Host:          r.Header.Values("X-Forwarded-Host"),
		DefaultHost:   r.Host,
	}
	if r.TLS != nil {
		in.DefaultScheme = "https"
	}
	if ms := r.Header.Values("X-Forwarded-Method"); len(ms) > 0 {
		in.Method = strings.Join(ms, ",") // several lines: not a token, refused
	}
	if fus := r.Header.Values("X-Forwarded-Uri"); len(fus) > 0 {
		in.Target = strings.Join(fus, ",")
		if len(fus) > 1 {
			in.Target = "?" // several lines: ambiguous, refused as a path
		}
		return in
	}
	in.Target = strings.TrimPrefix(rawTarget(r), "/decisions")
	if in.Target == "" || in.Target[0] == '?' {
		in.Target = "/" + in.Target
	}
	return in
}

// rawTarget is r's request target as received, in origin form (an
// absolute-form target loses its scheme and authority).
func rawTarget(r *http.Request) string {
	t := r.RequestURI
	if t == "" || t[0] == '/' {
		return t
	}
	if _, rest, ok := strings.Cut(t, "://"); ok {
		if i := strings.IndexByte(rest, '/'); i >= 0 {
			return rest[i:]
		}
		if i := strings.IndexByte(rest, '?'); i >= 0 {
			return "/" + rest[i:]
		}
	}
	return "/"
}

// checkPath returns badRequest(reasonAmbiguousPath) for a path upstreams may not agree
// on, in proxy mode (where the cleaned path is what goes upstream): a
// backslash (a separator to some servers) and dot segments with path
// parameters ("..;", ".;", which Java servlet containers resolve as ".."
// and "."). Matching them as written would let a request reach an upstream
// path no rule allowed.
func checkPath(p string) error {
	if strings.ContainsAny(p, "\\\x00") {
		return badRequest(reasonAmbiguousPath)
	}
	for rest := p; ; {
		seg, after, more := strings.Cut(rest, "/")
		if strings.HasPrefix(seg, "..;") || strings.HasPrefix(seg, ".;") {
			return badRequest(reasonAmbiguousPath)
		}
		if !more {
			return nil
		}
		rest = after
	}
}
