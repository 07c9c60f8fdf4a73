package proxy

import (
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/portcullis-proxy/portcullis/pipeline"
)

// describedInput is what a decision front end was told about the request it
// must decide on, as it was told: /decisions reads it from the call (its
// method, Host and path) or from X-Forwarded-Method/-Proto/-Host/-Uri; a
// gRPC ext_authz front end from the CheckRequest's HTTP attributes.
//
// Proto and Host hold every value received (each header line, as given):
// more than one value, or a comma-separated list, is ambiguous and refused.
type describedInput struct {
	// Method is the request's method ("" means GET).
	Method string
	// Proto are the X-Forwarded-Proto values (empty: DefaultScheme).
	Proto []string
	// DefaultScheme is the scheme when Proto is empty: "https" when the
	// call itself came over TLS, else "http".
	DefaultScheme string
	// Host are the X-Forwarded-Host values (empty: DefaultHost).
	Host []string
	// DefaultHost is the call's own Host, used when Host is empty.
	DefaultHost string
	// Target is the request target exactly as the application receives it:
	// the raw path, optionally followed by "?" and the query. Nothing in it
	// has been decoded or cleaned.
	Target string
}

// described is a request a decision front end may evaluate.
type described struct {
	Method string
	// URL has the scheme, host, the path decoded once (Path) and as
	// received (RawPath), and the raw query (kept for templates and error
	// handlers, never matched).
	URL *url.URL
}

// The reasons of the strict request description's 400s; every one names
// what was refused, and none echoes the client's value.
const (
	reasonAmbiguousPath  = "ambiguous request path"
	reasonBadHost        = "X-Forwarded-Host must be exactly one host[:port]"
	reasonBadProto       = "X-Forwarded-Proto must be exactly one of http, https"
	reasonBadHostHeader  = "Host must be exactly one host[:port]"
	reasonBadMethodValue = "X-Forwarded-Method must be an HTTP method token"
)

// badRequest is a 400 with reason, built afresh for each refusal (an
// *pipeline.Error is never shared).
func badRequest(reason string) error {
	return pipeline.NewError(http.StatusBadRequest, reason, nil)
}

// describeStrict is the one place a decision front end (the /decisions
// API, a gRPC ext_authz server) turns what it was told into the request the
// rules decide on. In decision mode portcullis approves a request it does
// not forward: the application routes on the target as the fronting proxy
// passes it, so portcullis must only approve a target whose meaning cannot
// differ between parsers. describeStrict answers a *pipeline.Error with
// status 400 for:
//
//   - a path that does not start with "/", or holds a control character,
//     a space, "\", "#" or (in the path part) "?";
//   - a percent-escape that is malformed, or encodes "/", "\", "%", "?",
//     "#" or a control character (an encoded separator routes differently
//     in every framework; an encoded "%" means something else to an
//     application that decodes twice);
//   - once decoded, bytes that are not UTF-8 (overlong forms such as
//     %C0%AE), an empty segment ("//") or a dot segment ("." or "..", also
//     with path parameters such as "..;");
//   - an X-Forwarded-Host (or Host) that is not exactly one host[:port]
//     (RFC 3986 reg-name, IPv4 or bracketed IPv6 literal; no user info,
//     path, percent-escape, comma-separated list or second header line);
//   - an X-Forwarded-Proto that is not exactly one of "http", "https";
//   - an X-Forwarded-Method that is not an HTTP token.
//
// Other percent-escapes are decoded once (URL.Path); the raw spelling is
// kept in URL.RawPath. Because an application may route on either, the
// decision path (decide) requires the rule that matches URL.Path to match
// URL.RawPath too.
func describeStrict(in describedInput) (*described, error) {
	method := in.Method
	if method == "" {
		method = http.MethodGet
	}
	if !isToken(method) {
		return nil, badRequest(reasonBadMethodValue)
	}
	method = strings.ToUpper(method)

	scheme := in.DefaultScheme
	if len(in.Proto) > 0 {
		p, err := forwardedProto(in.Proto)
		if err != nil {
			return nil, err
		}
		scheme = p
	}
	host := in.DefaultHost
	if len(in.Host) > 0 {
		h, err := forwardedHost(in.Host)
		if err != nil {
			return nil, err
		}
		host = h
	} else if !validHostPort(host) {
		return nil, badRequest(reasonBadHostHeader)
	}

	rawPath, rawQuery, _ := strings.Cut(in.Target, "?")
	p, err := strictPath(rawPath)
	if err != nil {
		return nil, err
	}
	u := &url.URL{Scheme: scheme, Host: host, Path: p, RawQuery: rawQuery}
	if rawPath != p {
		u.RawPath = rawPath
	}
	return &described{Method: method, URL: u}, nil
}

// forwardedProto reads X-Forwarded-Proto: exactly one value, "http" or
// "https" (scheme names are case-insensitive, RFC 3986 §3.1). A list ("https,
// http", as a load balancer appending to the client's value writes it) or a
// second header line is refused: taking the first value would let the
// client choose.
func forwardedProto(values []string) (string, error) {
	if len(values) != 1 {
		return "", badRequest(reasonBadProto)
	}
	switch v := values[0]; {
	case strings.EqualFold(v, "http"):
		return "http", nil
	case strings.EqualFold(v, "https"):
		return "https", nil
	}
	return "", badRequest(reasonBadProto)
}

// forwardedHost reads X-Forwarded-Host: exactly one value that is a
// host[:port] ([validHostPort]); a list or a second header line is refused.
func forwardedHost(values []string) (string, error) {
	if len(values) != 1 || !validHostPort(values[0]) {
		return "", badRequest(reasonBadHost)
	}
	return values[0], nil
}

// validHostPort reports whether v is exactly host[:port] as RFC 3986 §3.2.2
// defines host: an IP-literal ("[" IPv6 "]", no zone, no IPvFuture), an
// IPv4 address or a reg-name of unreserved characters and sub-delims other
// than ","; and port, if present, 1 to 65535. Percent-escapes, which a
// reg-name may hold but no DNS name needs, are refused, as are user info,
// "/", "?", "#", "\" and whitespace.
func validHostPort(v string) bool {
	host, port := v, ""
	if strings.HasPrefix(v, "[") {
		end := strings.IndexByte(v, ']')
		if end < 0 {
			return false
		}
		host, port = v[1:end], v[end+1:]
		a, err := netip.ParseAddr(host)
		if err != nil || !a.Is6() || a.Zone() != "" {
			return false
		}
		if port == "" {
			return true
		}
		if port[0] != ':' {
			return false
		}
		return validPort(port[1:])
	}
	if i := strings.LastIndexByte(v, ':'); i >= 0 {
		host, port = v[:i], v[i+1:]
		if !validPort(port) {
			return false
		}
	}
	if host == "" {
		return false
	}
	for i := 0; i < len(host); i++ {
		c := host[i]
		switch {
		case isUnreserved(c):
		case strings.IndexByte("!$&'()*+;=", c) >= 0: // sub-delims but ","
		default:
			return false
		}
	}
	return true
}

func validPort(p string) bool {
	if p == "" || len(p) > 5 {
		return false
	}
	n, err := strconv.Atoi(p)
	return err == nil && n >= 1 && n <= 65535 && p[0] != '+' && p[0] != '-'
}

// strictPath validates a raw path as describeStrict documents and returns
// it decoded once.
func strictPath(raw string) (string, error) {
	if raw == "" || raw[0] != '/' {
		return "", badRequest(reasonAmbiguousPath)
	}
	var b strings.Builder
	b.Grow(len(raw))
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		switch {
		case c < 0x20 || c == 0x7f || c == ' ' || c == '\\' || c == '#' || c == '?':
			return "", badRequest(reasonAmbiguousPath)
		case c == '%':
			if i+2 >= len(raw) || !isHex(raw[i+1]) || !isHex(raw[i+2]) {
				return "", badRequest(reasonAmbiguousPath)
			}
			d := unhex(raw[i+1])<<4 | unhex(raw[i+2])
			if d < 0x20 || d == 0x7f || strings.IndexByte("/\\%?#", d) >= 0 {
				return "", badRequest(reasonAmbiguousPath)
			}
			b.WriteByte(d)
			i += 2
		default:
			b.WriteByte(c)
		}
	}
	p := b.String()
	if !utf8.ValidString(p) {
		// Overlong forms (%C0%AE is "." to some decoders) and stray bytes
		// mean different things to different decoders.
		return "", badRequest(reasonAmbiguousPath)
	}
	segs := strings.Split(p[1:], "/")
	for i, seg := range segs {
		if seg == "" && i < len(segs)-1 {
			return "", badRequest(reasonAmbiguousPath) // "//"
		}
		name, _, _ := strings.Cut(seg, ";") // "..;x" is ".." to servlet containers
		if name == "." || name == ".." {
			return "", badRequest(reasonAmbiguousPath)
		}
	}
	return p, nil
}

func isUnreserved(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~'
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case '0' <= c && c <= '9':
		return c - '0'
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}

// isToken reports whether s is an RFC 9110 token (a method name).
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(isUnreserved(c) || strings.IndexByte("!#$%&'*+^`|", c) >= 0) {
			return false
		}
	}
	return true
}
