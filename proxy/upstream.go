package proxy

import (
	"context"
	"maps"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/portcullis-proxy/portcullis/pipeline"
	"github.com/portcullis-proxy/portcullis/rules"
)

// route is what one allowed request needs to be forwarded.
type route struct {
	rule    *rules.Compiled
	session *pipeline.Session
	url     *url.URL // the matched request URL (cleaned path)
	fwd     forwardedView
	// With HandlerOptions.Stream: cancel aborts the upstream exchange, w is the
	// client's writer and in the client's request.
	cancel context.CancelFunc
	w      http.ResponseWriter
	in     *http.Request
	// target and forwarded hold the upstream request's URL and its
	// X-Forwarded-For, -Host and -Proto values (rewrite), so that they
	// take no allocations of their own. A route is rewritten once.
	target    url.URL
	forwarded [3]string
}

// rewrite turns out (a copy of the client's request from which hop-by-hop
// and X-Forwarded-* headers were removed) into the upstream request:
// target URL, Host, forwarding headers, the session's headers and cookies,
// and no credential carriers the authenticators asked to scrub. out.URL
// becomes &rt.target.
func rewrite(out, in *http.Request, rt *route) {
	up := rt.rule.UpstreamURL
	p := rt.url.Path
	p = stripPrefix(p, rt.rule.Upstream.StripPath)
	rt.target = *up
	target := &rt.target
	switch target.Scheme {
	case "ws":
		target.Scheme = "http"
	case "wss":
		target.Scheme = "https"
	}
	target.Path = joinPath(up.Path, p)
	target.RawPath = ""
	target.RawQuery = scrubQuery(rt.url.RawQuery, rt.session.Scrub.QueryParams)
	target.Fragment = ""
	out.URL = target
	if rt.rule.Upstream.PreserveHost {
		out.Host = in.Host
	} else {
		out.Host = ""
	}

	setForwarded(out, in, rt.fwd, &rt.forwarded)
	for _, h := range rt.session.Scrub.Headers {
		out.Header.Del(h)
	}
	for k, v := range rt.session.Header {
		out.Header[http.CanonicalHeaderKey(k)] = append([]string(nil), v...)
	}
	if len(rt.session.Cookies) > 0 {
		out.Header.Set("Cookie", mergeCookies(out.Header.Values("Cookie"), rt.session.Cookies))
	}
}

// setForwarded sets X-Forwarded-For, -Host and -Proto for the upstream
// from what the proxy believes (fv). With trusted forwarding headers the
// load balancer's X-Forwarded-For gets the peer's address appended and its
// (validated) -Host and -Proto are passed on; otherwise the client's values
// are dropped: For is the peer, Host the Host header, Proto the
// connection's. The three values are stored in vals, each header's value
// a one-element slice of it (what Header.Set makes, without an allocation
// per header; an append to one of them copies it away).
func setForwarded(out, in *http.Request, fv forwardedView, vals *[3]string) {
	client, _, err := net.SplitHostPort(in.RemoteAddr)
	if err != nil {
		client = in.RemoteAddr
	}
	if prior := in.Header.Values("X-Forwarded-For"); fv.trusted && len(prior) > 0 {
		client = strings.Join(prior, ", ") + ", " + client
	}
	*vals = [3]string{client, fv.host, fv.proto}
	// The names are canonical, as Header.Set would make them.
	out.Header["X-Forwarded-For"] = vals[0:1:1]
	out.Header["X-Forwarded-Host"] = vals[1:2:2]
	out.Header["X-Forwarded-Proto"] = vals[2:3:3]
}

// stripPrefix removes strip_path from the start of p at a segment
// boundary: "/api" turns "/api/x" into "/x" and "/api" into "/", and leaves
// "/apiary" alone. As in Oathkeeper, strip_path is read without its
// slashes, so "api", "api/" and "/api/" strip the same as "/api".
// Oathkeeper removes the first occurrence anywhere in the path; portcullis
// only a leading segment (docs/migration-from-oathkeeper.md). The result
// always starts with "/".
func stripPrefix(p, strip string) string {
	strip = strings.Trim(strip, "/")
	if strip == "" {
		return p
	}
	strip = "/" + strip
	if !strings.HasPrefix(p, strip) {
		return p
	}
	rest := p[len(strip):]
	switch {
	case rest == "":
		return "/"
	case rest[0] == '/':
		return rest
	default:
		return p
	}
}

func joinPath(base, p string) string {
	switch {
	case base == "" || base == "/":
		if p == "" {
			return "/"
		}
		return p
	case p == "" || p == "/":
		if strings.HasSuffix(base, "/") || p == "" {
			return base
		}
		return base + "/"
	}
	return strings.TrimSuffix(base, "/") + "/" + strings.TrimPrefix(p, "/")
}

// scrubQuery removes the named parameters from a raw query, keeping the
// rest byte for byte. Pairs are separated by "&" and also by ";", which
// some upstream frameworks still accept as a separator: "x=1;token=t" must
// not carry the token past portcullis.
func scrubQuery(raw string, names []string) string {
	if raw == "" || len(names) == 0 {
		return raw
	}
	parts := strings.Split(raw, "&")
	kept := parts[:0]
	for _, part := range parts {
		if strings.IndexByte(part, ';') >= 0 {
			sub := strings.Split(part, ";")
			keptSub := sub[:0]
			for _, p := range sub {
				if !isCarrierPair(p, names) {
					keptSub = append(keptSub, p)
				}
			}
			if len(keptSub) > 0 {
				kept = append(kept, strings.Join(keptSub, ";"))
			}
			continue
		}
		if !isCarrierPair(part, names) {
			kept = append(kept, part)
		}
	}
	return strings.Join(kept, "&")
}

// isCarrierPair reports whether the raw query pair's (decoded) key is one
// of names.
func isCarrierPair(pair string, names []string) bool {
	key, _, _ := strings.Cut(pair, "=")
	if k, err := url.QueryUnescape(key); err == nil {
		key = k
	}
	for _, n := range names {
		if key == n {
			return true
		}
	}
	return false
}

// mergeCookies returns a Cookie header of the client's cookies with the
// session's cookies replacing any of the same name.
func mergeCookies(client []string, set map[string]string) string {
	var parts []string
	for _, line := range client {
		for _, c := range strings.Split(line, ";") {
			c = strings.TrimSpace(c)
			name, _, _ := strings.Cut(c, "=")
			if _, replaced := set[name]; c == "" || replaced {
				continue
			}
			parts = append(parts, c)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(set)) {
		parts = append(parts, (&http.Cookie{Name: name, Value: set[name]}).String())
	}
	return strings.Join(parts, "; ")
}
