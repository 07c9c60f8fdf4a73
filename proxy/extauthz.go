package proxy

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"

	"github.com/portcullis-proxy/portcullis/pipeline"
	"github.com/portcullis-proxy/portcullis/proxy/tunnel"
)

// ExtAuthz serves Envoy's external authorization API over gRPC
// (envoy.service.auth.v3.Authorization/Check) with the semantics of
// /decisions: the request is described by the CheckRequest's
// attributes.request.http (method, scheme, host, path and headers; the body
// when Envoy sends it; the client address from attributes.source), runs
// through the one decision path like every other front end, and is
// answered with an OkHttpResponse carrying the mutators' headers (and the
// removal of the credential carriers the authenticators asked to scrub) or
// a DeniedHttpResponse carrying the error handler's status, headers and
// body.
//
// Envoy asks once per request; a WebSocket is authorised once, at its
// upgrade, and then left open: tunnels bound to the session's lifetime
// need portcullis in proxy mode.
//
// Its log line is "check", its metric's front end "grpc". With tracing, the
// trace context read when trusted is the described request's (Envoy
// forwards the client's traceparent in attributes.request.http.headers).
type ExtAuthz struct {
	authv3.UnimplementedAuthorizationServer
	path decisionPath
}

// NewExtAuthz returns the ext_authz service configured by o; it never
// changes o afterwards. It panics when o.Rules is nil.
func NewExtAuthz(o DecisionOptions) *ExtAuthz {
	return &ExtAuthz{path: newDecisionPath(o, frontEnd{metric: "grpc", span: "check ", line: "check"})}
}

var _ authv3.AuthorizationServer = (*ExtAuthz)(nil)

// Check implements authv3.AuthorizationServer. It never returns a gRPC
// error for a request it can describe: denials, malformed descriptions (400)
// and rules not loaded (503) are all DeniedHttpResponses, so Envoy answers
// the client with portcullis's status whatever its failure_mode_allow says.
func (x *ExtAuthz) Check(ctx context.Context, req *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	w := &bufferedResponse{header: http.Header{}}
	ex := x.path.begin(w)
	defer ex.finish()
	described, u, err := describeCheck(ctx, req)
	if !ex.decide(description{req: described, url: u, err: err, logPath: u.Path, logHost: u.Host}) {
		return denied(w), nil
	}
	return okResponse(described.Header, ex.out.Session), nil
}

// errBadCheck refuses a CheckRequest that does not describe an HTTP request.
func errBadCheck(reason string) *pipeline.Error {
	return pipeline.NewError(http.StatusBadRequest, reason, nil)
}

// describeCheck turns a CheckRequest into the request the decision path
// evaluates, and its matched URL. An unusable description is an error with
// status 400; the returned request and URL are then still usable for the
// log line.
func describeCheck(ctx context.Context, req *authv3.CheckRequest) (*http.Request, *url.URL, error) {
	h := req.GetAttributes().GetRequest().GetHttp()
	r := (&http.Request{Method: strings.ToUpper(h.GetMethod()), Header: http.Header{}, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Body: http.NoBody}).WithContext(ctx)
	u := &url.URL{Path: "-"} // what the log shows of a refused description
	r.URL = u
	if h == nil {
		return r, u, errBadCheck("the check request has no attributes.request.http")
	}
	if r.Method == "" || h.GetHost() == "" || h.GetPath() == "" {
		return r, u, errBadCheck("attributes.request.http needs a method, a host and a path")
	}
	// The one strict description of every decision front end: a scheme,
	// host or path some parser could read differently is a 400.
	in := describedInput{Method: h.GetMethod(), DefaultScheme: "http", Host: []string{h.GetHost()}, Target: h.GetPath()}
	if sc := h.GetScheme(); sc != "" {
		in.Proto = []string{sc}
	}
	if !strings.Contains(in.Target, "?") && h.GetQuery() != "" {
		in.Target += "?" + h.GetQuery()
	}
	d, err := describeStrict(in)
	if err != nil {
		return r, u, err
	}
	u = d.URL
	r.Method, r.URL, r.Host = d.Method, u, u.Host
	for k, v := range h.GetHeaders() {
		addCheckHeader(r.Header, k, v)
	}
	for _, hv := range h.GetHeaderMap().GetHeaders() {
		v := hv.GetValue()
		if v == "" && len(hv.GetRawValue()) > 0 {
			v = string(hv.GetRawValue())
		}
		addCheckHeader(r.Header, hv.GetKey(), v)
	}
	r.Header.Del("Host")
	switch {
	case len(h.GetRawBody()) > 0:
		r.Body, r.ContentLength = io.NopCloser(bytes.NewReader(h.GetRawBody())), int64(len(h.GetRawBody()))
	case h.GetBody() != "":
		r.Body, r.ContentLength = io.NopCloser(strings.NewReader(h.GetBody())), int64(len(h.GetBody()))
	}
	if sa := req.GetAttributes().GetSource().GetAddress().GetSocketAddress(); sa != nil {
		r.RemoteAddr = net.JoinHostPort(sa.GetAddress(), strconv.Itoa(int(sa.GetPortValue())))
	}
	r.RequestURI = u.RequestURI()
	return r, u, nil
}

// addCheckHeader adds one header of the description; HTTP/2 pseudo-headers
// (":path", ":authority") are the description's own fields and skipped.
func addCheckHeader(h http.Header, k, v string) {
	if k == "" || k[0] == ':' {
		return
	}
	h.Add(k, v)
}

// okResponse is the answer to an allowed request: the mutators' headers
// replace the client's of the same name (headers the mutators left as the
// client sent them are not repeated), the merged Cookie header when the
// cookie mutator set cookies, and the credential carriers the
// authenticators recorded are removed (headers, query parameters, and
// Sec-WebSocket-Protocol entries).
func okResponse(client http.Header, s *pipeline.Session) *authv3.CheckResponse {
	ok := &authv3.OkHttpResponse{}
	set := map[string]bool{}
	for _, k := range slices.Sorted(keysOf(s.Header)) {
		name := http.CanonicalHeaderKey(k)
		if slices.Equal(s.Header[k], client.Values(name)) {
			// The client's own value (the noop mutator echoes the request):
			// Envoy forwards it anyway, and a carrier among them must
			// still be removed.
			continue
		}
		set[name] = true
		ok.Headers = append(ok.Headers, headerOptions(name, s.Header[k])...)
	}
	if len(s.Cookies) > 0 {
		set["Cookie"] = true
		ok.Headers = append(ok.Headers, headerOptions("Cookie", []string{mergeCookies(client.Values("Cookie"), s.Cookies)})...)
	}
	for _, h := range s.Scrub.Headers {
		if name := http.CanonicalHeaderKey(h); !set[name] && !slices.Contains(ok.HeadersToRemove, name) {
			ok.HeadersToRemove = append(ok.HeadersToRemove, name)
		}
	}
	if offered := client.Values("Sec-WebSocket-Protocol"); len(offered) > 0 && !set["Sec-Websocket-Protocol"] {
		// The token entry of the offer (by exact value or prefix) never
		// reaches the upstream; the rest of the offer is kept.
		kept := tunnel.OfferedProtocols(client, s.Scrub)
		switch {
		case len(kept) == 0:
			ok.HeadersToRemove = append(ok.HeadersToRemove, "Sec-Websocket-Protocol")
		case strings.Join(kept, ", ") != strings.Join(offered, ", "):
			ok.Headers = append(ok.Headers, headerOptions("Sec-Websocket-Protocol", []string{strings.Join(kept, ", ")})...)
		}
	}
	for _, q := range s.Scrub.QueryParams {
		if !slices.Contains(ok.QueryParametersToRemove, q) {
			ok.QueryParametersToRemove = append(ok.QueryParametersToRemove, q)
		}
	}
	return &authv3.CheckResponse{
		Status:       &rpcstatus.Status{Code: int32(codes.OK)},
		HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: ok},
	}
}

// headerOptions sets name to values: the first replaces what the client
// sent, the rest are appended.
func headerOptions(name string, values []string) []*corev3.HeaderValueOption {
	out := make([]*corev3.HeaderValueOption, 0, len(values))
	for i, v := range values {
		action := corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD
		if i == 0 {
			action = corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD
		}
		out = append(out, &corev3.HeaderValueOption{Header: &corev3.HeaderValue{Key: name, Value: v}, AppendAction: action})
	}
	return out
}

// denied is the answer to a denial whose error handler wrote w: its status,
// headers and body become the DeniedHttpResponse.
func denied(w *bufferedResponse) *authv3.CheckResponse {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	d := &authv3.DeniedHttpResponse{Status: &typev3.HttpStatus{Code: typev3.StatusCode(w.code)}, Body: w.body.String()}
	for _, k := range slices.Sorted(keysOf(w.header)) {
		d.Headers = append(d.Headers, headerOptions(k, w.header[k])...)
	}
	return &authv3.CheckResponse{
		Status:       &rpcstatus.Status{Code: int32(grpcCode(w.code)), Message: http.StatusText(w.code)},
		HttpResponse: &authv3.CheckResponse_DeniedResponse{DeniedResponse: d},
	}
}

// grpcCode is the gRPC status of a denial answered with HTTP status code.
func grpcCode(code int) codes.Code {
	switch {
	case code == http.StatusUnauthorized:
		return codes.Unauthenticated
	case code == http.StatusNotFound:
		return codes.NotFound
	case code == http.StatusBadRequest:
		return codes.InvalidArgument
	case code == http.StatusServiceUnavailable || code == http.StatusGatewayTimeout || code == http.StatusBadGateway:
		return codes.Unavailable
	case code >= 500:
		return codes.Internal
	default:
		// 403, and redirects to a login page.
		return codes.PermissionDenied
	}
}

func keysOf(h http.Header) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range h {
			if !yield(k) {
				return
			}
		}
	}
}

// bufferedResponse collects what an error handler writes.
type bufferedResponse struct {
	header http.Header
	code   int
	body   bytes.Buffer
}

func (b *bufferedResponse) Header() http.Header { return b.header }

func (b *bufferedResponse) WriteHeader(code int) {
	if b.code == 0 {
		b.code = code
	}
}

func (b *bufferedResponse) Write(p []byte) (int, error) {
	if b.code == 0 {
		b.code = http.StatusOK
	}
	return b.body.Write(p)
}
