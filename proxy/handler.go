package proxy

import (
	"context"
	"errors"
	"io"
	stdlog "log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/portcullis-proxy/portcullis/pipeline"
	"github.com/portcullis-proxy/portcullis/proxy/tunnel"
	"github.com/portcullis-proxy/portcullis/rules"
)

// RuleSource returns the serving rule set (nil before the first load).
// *rules.Repository implements it.
type RuleSource interface {
	Current() *rules.Set
}

// Upgrader serves an authorised WebSocket upgrade: r is the client's
// request, its URL made absolute with the scheme and host portcullis
// believes it was sent to (the connection's, or a trusted load
// balancer's); req.Upstream is the request as it would go upstream (URL,
// Host, forwarding and mutated headers, credential carriers removed; the
// client's Sec-WebSocket-*, Origin and Cookie headers still present).
// *tunnel.Server implements it.
type Upgrader interface {
	ServeTunnel(w http.ResponseWriter, r *http.Request, req tunnel.Request)
}

// StreamGovernor governs the streaming response ([tunnel.IsStream]) of an
// allowed request under the rule's policy: it returns the body copied to
// the client in place of req.Response.Body. *tunnel.Server implements it.
type StreamGovernor interface {
	GovernStream(req tunnel.StreamRequest) io.ReadCloser
}

// HandlerOptions configures a [Handler]. Zero fields take the documented
// defaults; [NewHandler] copies them and the Handler never changes them.
type HandlerOptions struct {
	DecisionOptions
	// Transport carries requests upstream; nil uses [NewTransport].
	Transport http.RoundTripper
	// Upgrade serves WebSocket upgrades; nil forwards them with
	// httputil.ReverseProxy (no session binding).
	Upgrade Upgrader
	// Stream governs streaming responses (no Content-Length, or
	// text/event-stream) under their rule's policy; nil relays them as
	// httputil does, unbound.
	Stream StreamGovernor
	// TrustForwardedHeaders is Oathkeeper's serve.proxy.trust_forwarded_headers:
	// the client's X-Forwarded-For, -Host and -Proto are a trusted load
	// balancer's and are passed upstream (For with the peer's address
	// appended), each exactly one valid value or the request is a 400.
	// When false they are replaced by what portcullis itself saw (For: the
	// peer, Host: the Host header, Proto: the connection's), and no stage
	// or error handler sees them. Either way, as in Oathkeeper,
	// X-Forwarded-Proto: https selects a rule's https:// form. Enable only
	// behind a load balancer that sets them.
	TrustForwardedHeaders bool
	// MatchForwardedHost (serve.proxy.match_forwarded_host) also lets a
	// trusted X-Forwarded-Host decide the host rules match. It has no
	// effect without TrustForwardedHeaders.
	MatchForwardedHost bool
}

// Handler is the reverse proxy: it matches the request to exactly one
// rule, runs the rule's stages and either forwards the request upstream or
// answers with the rule's error handlers. Build it with [NewHandler]; it is
// ready for concurrent use from its first request.
type Handler struct {
	path    decisionPath
	upgrade Upgrader
	stream  StreamGovernor
	// trustForwarded and matchForwardedHost are HandlerOptions'
	// TrustForwardedHeaders and MatchForwardedHost.
	trustForwarded, matchForwardedHost bool
	// transport is HandlerOptions.Transport or its default, before tracing
	// wraps it.
	transport http.RoundTripper
	rp        *httputil.ReverseProxy
}

// SessionRevocations is what the proxy needs of the revocation service.
type SessionRevocations interface {
	Revoker
	// Revoked reports whether the session or the subject was revoked.
	Revoked(sessionID, subject string) bool
}

type routeKey struct{}

// NewTransport returns the shared upstream transport: keep-alive pools
// sized for a proxy, sane dial and header timeouts.
func NewTransport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = 1024
	t.MaxIdleConnsPerHost = 256
	t.IdleConnTimeout = 90 * time.Second
	t.ResponseHeaderTimeout = 60 * time.Second
	t.DialContext = (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	return t
}

// NewHandler returns the reverse proxy configured by o. It panics when
// o.Rules is nil.
func NewHandler(o HandlerOptions) *Handler {
	h := &Handler{
		path:           newDecisionPath(o.DecisionOptions, frontEnd{metric: "proxy", span: "proxy ", line: "request"}),
		upgrade:        o.Upgrade,
		stream:         o.Stream,
		trustForwarded: o.TrustForwardedHeaders, matchForwardedHost: o.MatchForwardedHost,
	}
	h.transport = o.Transport
	if h.transport == nil {
		h.transport = NewTransport()
	}
	transport := h.transport
	if o.Tracing != nil {
		// One client span per upstream round trip.
		transport = tracedTransport{base: transport, t: o.Tracing}
	}
	h.rp = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			rewrite(pr.Out, pr.In, pr.In.Context().Value(routeKey{}).(*route))
			if h.upgrade != nil {
				// WebSocket upgrades go through the session-bound tunnel;
				// httputil would switch any other protocol (h2c, a custom
				// one, a WebSocket upgrade spelt loosely) into a raw
				// connection with none of the tunnel's checks. Such a
				// request is forwarded as a plain request, and a 101
				// answering it is refused as a bad gateway.
				pr.Out.Header.Del("Upgrade")
				pr.Out.Header.Del("Connection")
			}
		},
		Transport: transport,
		// Streams (unknown length) and Server-Sent Events are flushed as
		// they arrive whatever this says (httputil's own rule). A body of
		// known length is written in as few writes as the buffer allows,
		// its headers at most 100 ms after the upstream's: flushing every
		// response at once (-1) cost an extra write and a timer goroutine
		// per request.
		FlushInterval: 100 * time.Millisecond,
		ErrorHandler:  upstreamError,
		ModifyResponse: func(res *http.Response) error {
			if rt, ok := res.Request.Context().Value(routeKey{}).(*route); ok {
				h.revokeOnSuccess(rt, res.StatusCode)
				if h.stream != nil && rt.cancel != nil && tunnel.IsStream(res) {
					res.Body = h.stream.GovernStream(tunnel.StreamRequest{RuleID: rt.rule.ID, Policy: *rt.rule.Policy(), Rule: rt.rule,
						Session: rt.session, Response: res, Cancel: rt.cancel, Client: rt.w, RemoteAddr: rt.in.RemoteAddr})
				}
			}
			return nil
		},
		// httputil's own lines (a body copy cut short: an aborted stream,
		// a client gone) go to the request log at debug level; the answer
		// and the stream's end are logged where they are decided.
		ErrorLog:   stdlog.New(debugWriter{h.path.log}, "", 0),
		BufferPool: copyBuffers,
	}
	return h
}

// copyBuffers lends httputil the buffers it copies response bodies
// through; without a pool it allocates 32 KiB for every response.
var copyBuffers httputil.BufferPool = &bufferPool{}

// copyBufferSize is the size of httputil's own copy buffers.
const copyBufferSize = 32 << 10

// bufferPool pools copy buffers as array pointers: a buffer goes back to
// the pool without the allocation a *[]byte would cost on every Put.
type bufferPool struct{ p sync.Pool }

func (b *bufferPool) Get() []byte {
	if v, ok := b.p.Get().(*[copyBufferSize]byte); ok {
		return v[:]
	}
	return make([]byte, copyBufferSize)
}

func (b *bufferPool) Put(buf []byte) {
	if len(buf) == copyBufferSize {
		b.p.Put((*[copyBufferSize]byte)(buf))
	}
}

// upstreamError answers a failed upstream exchange: 504 for a timeout, 502
// otherwise, as JSON. The cause is not shown to the client.
func upstreamError(w http.ResponseWriter, r *http.Request, err error) {
	status, reason := http.StatusBadGateway, "upstream unreachable"
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		status, reason = http.StatusGatewayTimeout, "upstream timed out"
	}
	if errors.Is(err, context.Canceled) && r.Context().Err() != nil {
		// The client went away; nobody reads the answer.
		status, reason = 499, "client closed request"
	}
	if pe := (*pipeline.Error)(nil); errors.As(err, &pe) && pe.Status < 500 {
		// The client's own request failed on the way, e.g. a body whose
		// framing was refused (httpguard.MalformedBody): not the
		// upstream's fault.
		status, reason = pe.Status, pe.Reason
	}
	if rec, ok := w.(*recorder); ok {
		rec.upstreamErr = err
	}
	pipeline.WriteError(w, pipeline.NewError(status, reason, err), false)
}

// ServeHTTP implements http.Handler: the request is described, decided on
// the one decision path and, when allowed, forwarded.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := &proxied{rec: recorder{ResponseWriter: w}}
	x := h.path.beginOn(&p.rec)
	defer x.finish()
	if !x.decide(h.describe(r, p)) {
		return
	}
	h.forward(p, &x.out)
}

// proxied is what one request on the proxy needs besides its exchange, in
// one allocation: the answer's recorder, the URL rules match, what
// portcullis believes of the request's forwarding and, once allowed, its
// route and the upstream request's context.
type proxied struct {
	rec recorder
	url url.URL
	fwd forwardedView
	rt  route
	ctx routeContext
}

// routeContext is the context an allowed request is forwarded under: its
// parent's, with the route as the value of routeKey{} (what
// context.WithValue would make, without its allocation).
type routeContext struct {
	context.Context
	rt *route
}

// Value implements context.Context.
func (c *routeContext) Value(key any) any {
	if key == (routeKey{}) {
		return c.rt
	}
	return c.Context.Value(key)
}

// describe reads the proxy's request r into p: the URL rules match (the
// connection's scheme and the Host header, or a trusted load balancer's,
// with the cleaned path), refused when the forwarding headers or the path
// are ambiguous, and p.fwd, what portcullis believes of the request's
// forwarding. Untrusted X-Forwarded-* are removed from the request the
// stages see; after a stage's denial the error handlers see its URL
// absolute, with the scheme and host portcullis believes.
func (h *Handler) describe(r *http.Request, p *proxied) (d description) {
	d = description{req: r, logPath: r.URL.Path, logHost: r.Host}
	p.fwd, d.err = requestURL(&p.url, r, h.trustForwarded, h.matchForwardedHost)
	if d.err == nil {
		d.err = checkPath(r.URL.Path)
	}
	if d.err != nil {
		return d
	}
	d.url = &p.url
	if !p.fwd.trusted {
		// The client's own X-Forwarded-* describe nothing portcullis
		// believes: no stage or error handler (a redirect's return_to)
		// may read them.
		d.req = withoutForwarded(r)
	}
	d.absolute = &p.fwd
	return d
}

// forward writes the answer to the allowed request o on rec: the
// WebSocket tunnel for an upgrade, otherwise the upstream's answer (a
// stream governed under the rule's policy).
func (h *Handler) forward(p *proxied, o *outcome) {
	r, rule, s, rec, fv := o.Request, o.Rule, o.Session, &p.rec, p.fwd
	if rule.UpstreamURL == nil {
		o.Err = pipeline.NewError(http.StatusInternalServerError, "rule has no upstream", errors.New("upstream.url is empty"))
		pipeline.WriteError(rec, o.Err, false)
		return
	}
	rt := &p.rt
	*rt = route{rule: rule, session: s, url: o.URL, fwd: fv}
	if h.upgrade != nil && isWebSocketUpgrade(r) {
		out := r.Clone(r.Context())
		removeHopByHop(out.Header)
		out.Header.Del("X-Forwarded-For")
		out.Header.Del("X-Forwarded-Host")
		out.Header.Del("X-Forwarded-Proto")
		out.Header.Del("Forwarded")
		rewrite(out, r, rt)
		// The tunnel's same-origin check compares the browser's Origin
		// with the origin portcullis believes the request was sent to.
		in := r.WithContext(r.Context())
		self := *r.URL
		self.Scheme, self.Host = fv.proto, fv.host
		in.URL = &self
		req := tunnel.Request{RuleID: rule.ID, Policy: *rule.Policy(), Rule: rule, Session: s, Upstream: out}
		if h.path.tracing == nil {
			h.upgrade.ServeTunnel(rec, in, req)
			return
		}
		// The tunnel span outlives the request's: the tunnel ends it with
		// its close reason (TunnelSpan); a refused upgrade ends it here.
		ctx, tspan := h.path.tracing.tracer.Start(r.Context(), "websocket tunnel", trace.WithAttributes(attrRule.String(rule.ID)))
		req.Upstream, req.Closed = out.WithContext(ctx), TunnelSpan(ctx)
		h.upgrade.ServeTunnel(rec, in.WithContext(ctx), req)
		if rec.status() != http.StatusSwitchingProtocols {
			tspan.SetAttributes(attrCloseReason.String("refused"), attribute.Int("http.response.status_code", rec.status()))
			tspan.End()
		}
		return
	}
	ctx := r.Context()
	if h.stream != nil {
		// A governed stream ends by cancelling its upstream exchange.
		var cancel context.CancelFunc
		ctx, cancel = context.WithCancel(ctx)
		defer cancel()
		rt.cancel, rt.w, rt.in = cancel, rec, r
	}
	p.ctx = routeContext{Context: ctx, rt: rt}
	h.rp.ServeHTTP(rec, r.WithContext(&p.ctx))
}

// CloseIdleConnections closes the idle keep-alive connections of the
// upstream transport, as [http.Client.CloseIdleConnections] does; a
// Transport that keeps none is left alone.
func (h *Handler) CloseIdleConnections() {
	if c, ok := h.transport.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

// revokeOnSuccess applies the rule's revoke_session_on_success: the
// upstream (the identity provider's logout endpoint) answered status for
// the route's request; 2xx and 3xx mean the session ended there, so it is
// revoked here and on every replica, and remembered until it would have
// expired.
func (h *Handler) revokeOnSuccess(rt *route, status int) {
	s := rt.session
	if h.path.revocations == nil || !rt.rule.RevokeSessionOnSuccess || s.SessionID == "" || status < 200 || status >= 400 {
		return
	}
	h.path.revocations.Revoke(Revocation{SessionID: s.SessionID, Source: SourceLogout, Until: s.ExpiresAt})
}

// withoutCarriers returns r without the query parameters that carried a
// credential (as the authenticators recorded them in s.Scrub), so that an
// error handler building a URL from the request (redirect's return_to)
// cannot copy a token into it. X-Forwarded-Uri, which the decision API and
// the redirect handler read, is cleaned the same way, and subprotocol
// carriers are removed from Sec-WebSocket-Protocol.
func withoutCarriers(r *http.Request, s *pipeline.Session) *http.Request {
	sc := s.Scrub
	if len(sc.QueryParams) == 0 && len(sc.Subprotocols) == 0 && len(sc.SubprotocolPrefixes) == 0 {
		return r
	}
	r2 := r.Clone(r.Context())
	r2.URL.RawQuery = scrubQuery(r.URL.RawQuery, s.Scrub.QueryParams)
	r2.RequestURI = r2.URL.RequestURI()
	if vs := r2.Header.Values("Sec-WebSocket-Protocol"); len(vs) > 0 {
		if kept := tunnel.OfferedProtocols(r2.Header, sc); len(kept) > 0 {
			r2.Header.Set("Sec-WebSocket-Protocol", strings.Join(kept, ", "))
		} else {
			r2.Header.Del("Sec-WebSocket-Protocol")
		}
	}
	if fu := r2.Header.Get("X-Forwarded-Uri"); fu != "" {
		if p, q, ok := strings.Cut(fu, "?"); ok {
			if q = scrubQuery(q, s.Scrub.QueryParams); q != "" {
				p += "?" + q
			}
			r2.Header.Set("X-Forwarded-Uri", p)
		}
	}
	return r2
}

// forwardedHeaders are the headers a load balancer in front of portcullis
// sets to describe the client's request.
var forwardedHeaders = []string{"X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "X-Forwarded-Uri", "X-Forwarded-Method", "Forwarded"}

// withoutForwarded returns r without the client's forwarding headers.
func withoutForwarded(r *http.Request) *http.Request {
	has := false
	for _, k := range forwardedHeaders {
		if _, ok := r.Header[k]; ok {
			has = true
			break
		}
	}
	if !has {
		return r
	}
	r2 := r.WithContext(r.Context())
	r2.Header = r.Header.Clone()
	for _, k := range forwardedHeaders {
		r2.Header.Del(k)
	}
	return r2
}

// errorView returns r as the error handlers see it on the proxy: its URL
// absolute, with the scheme and host portcullis believes (the connection's
// and the Host header, or a trusted load balancer's), so a redirect's
// return_to never points where an untrusted header chose; path and query
// as received, carriers already removed.
func errorView(r *http.Request, fv forwardedView) *http.Request {
	r2 := r.WithContext(r.Context())
	u := *r.URL
	u.Scheme, u.Host = fv.proto, fv.host
	r2.URL = &u
	return r2
}

// isWebSocketUpgrade reports whether r asks to switch to WebSocket.
func isWebSocketUpgrade(r *http.Request) bool {
	return headerHasToken(r.Header, "Connection", "upgrade") && headerHasToken(r.Header, "Upgrade", "websocket")
}

// headerHasToken reports whether a comma-separated list in one of h's
// name lines holds token (case-insensitive). Every request is asked (a
// browser's Connection: keep-alive among them), so the lists are read in
// place, not split into slices.
func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for more := true; more; {
			var t string
			t, v, more = strings.Cut(v, ",")
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// hopByHop are the headers RFC 9110 §7.6.1 says a proxy must not forward.
var hopByHop = []string{
	"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
	"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade",
}

// removeHopByHop deletes hop-by-hop headers, including those the
// Connection header names. It runs before the mutators' headers are
// applied, so "Connection: X-User" cannot remove an identity header.
func removeHopByHop(h http.Header) {
	for _, v := range h.Values("Connection") {
		for _, name := range strings.Split(v, ",") {
			if name = strings.TrimSpace(name); name != "" {
				h.Del(name)
			}
		}
	}
	for _, name := range hopByHop {
		h.Del(name)
	}
}
