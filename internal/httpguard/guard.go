// Package httpguard refuses HTTP/1.x requests whose framing a front end and
// net/http could read differently (request smuggling), before net/http
// reads them.
//
// net/http is strict about most framing, but it accepts a few messages RFC
// 9112 says a server ought to treat as errors, and a proxy in front of
// portcullis may read those differently:
//
//   - Content-Length together with Transfer-Encoding (net/http lets
//     Transfer-Encoding win and drops Content-Length; RFC 9112 §6.1 says the
//     message "ought to be handled as an error");
//   - Transfer-Encoding on an HTTP/1.0 request (net/http ignores it; RFC
//     9112 §6.1: "MUST treat the message as if the framing is faulty");
//   - obs-fold line folding (net/http joins the lines; RFC 9112 §5.2 lets a
//     server reject it);
//   - a bare LF ending a chunk-size line or a bare CR: net/http refuses them
//     too, but only while the handler reads the body, after the request was
//     handed to it.
//
// A [Conn] follows the framing of the requests on its connection as the
// bytes arrive (a small state machine over each header block and the
// framing lines of chunked bodies; Content-Length bodies are skipped by
// count) and delivers them to net/http unchanged, up to a message it
// refuses. In that message's place it delivers a NUL, which is invalid in
// every element net/http parses: net/http answers 400 Bad Request and
// closes the connection. The refused message and everything after it never
// reach a handler.
//
// To refuse a chunked request whose first chunk-size line is malformed
// before it is handled, the end of its header block is held back until
// that line has arrived (not when the client sends Expect: 100-continue and
// waits for the server). The read-header timeout covers the wait. A
// malformed framing line further into a body ends the body with an error
// and the connection with it: the handler sees a failed body read, the
// upstream an incomplete request, and nothing after it is read as a
// request.
//
// After a request that may switch protocols (an Upgrade field, CONNECT),
// the bytes that follow are held until the server either takes the
// connection over (they are then delivered untouched, and so is everything
// after) or answers the request and reads on (they are judged as HTTP). The
// server's ConnState hook tells which: use [Protect], which installs it.
//
// The cost is one pass over each header block and chunk-size line, no
// allocation on the common path, and a pooled buffer only while bytes are
// held; see BenchmarkGuard.
//
// Wrapping a *tls.Conn hides it from net/http: the server neither sees the
// TLS state nor offers HTTP/2 on such a listener. [Handler] puts the TLS
// state back on each request (r.TLS); the proxy serves HTTP/1.1 only.
package httpguard

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"

	"github.com/portcullis-proxy/portcullis/pipeline"
)

// Listener wraps every accepted connection in a [Conn].
type Listener struct{ net.Listener }

// Accept implements net.Listener.
func (l Listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return NewConn(c), nil
}

// Protect makes srv serve ln through the guard: it returns the listener to
// serve, and chains srv's ConnState (required: it tells held bytes after an
// upgrade request apart), ConnContext and Handler (see [Handler]) with the
// guard's. Call it once, before srv serves.
func Protect(srv *http.Server, ln net.Listener) net.Listener {
	prevState, prevCtx := srv.ConnState, srv.ConnContext
	srv.ConnState = func(c net.Conn, s http.ConnState) {
		ConnState(c, s)
		if prevState != nil {
			prevState(c, s)
		}
	}
	srv.ConnContext = func(ctx context.Context, c net.Conn) context.Context {
		if prevCtx != nil {
			ctx = prevCtx(ctx, c)
		}
		return ConnContext(ctx, c)
	}
	srv.Handler = Handler(srv.Handler)
	return Listener{ln}
}

// ConnState is the http.Server.ConnState hook for guarded connections.
func ConnState(c net.Conn, s http.ConnState) {
	if gc, ok := c.(*Conn); ok {
		gc.state(s)
	}
}

type connKey struct{}

// ConnContext is the http.Server.ConnContext hook: it makes the guarded
// connection known to [Handler].
func ConnContext(ctx context.Context, c net.Conn) context.Context {
	if gc, ok := c.(*Conn); ok {
		return context.WithValue(ctx, connKey{}, gc)
	}
	return ctx
}

// MalformedBody is the reason of the error reading a request body returns
// after its framing was refused mid-body: a 400 [*pipeline.Error], built
// afresh for each read that fails (errors.Is(err, pipeline.ErrBadRequest)).
const MalformedBody = "malformed request body framing"

// Handler restores what wrapping the connection hid from net/http: r.TLS
// for a TLS connection. It also makes a body whose framing was refused
// fail with a 400 whose reason is [MalformedBody].
func Handler(h http.Handler) http.Handler {
	if h == nil {
		h = http.DefaultServeMux
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gc, ok := r.Context().Value(connKey{}).(*Conn)
		if !ok {
			h.ServeHTTP(w, r)
			return
		}
		cs, isTLS := gc.TLSConnectionState()
		hasBody := r.Body != nil && r.Body != http.NoBody
		if (isTLS && r.TLS == nil) || hasBody {
			// Handlers do not modify the request they are given.
			r2 := new(http.Request)
			*r2 = *r
			if isTLS && r.TLS == nil {
				r2.TLS = &cs
			}
			if hasBody {
				r2.Body = &body{ReadCloser: r.Body, c: gc}
			}
			r = r2
		}
		h.ServeHTTP(w, r)
	})
}

// body reports a refused framing as a 400 ([MalformedBody]).
type body struct {
	io.ReadCloser
	c *Conn
}

func (b *body) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && !errors.Is(err, io.EOF) && b.c.Refused() {
		err = pipeline.NewError(http.StatusBadRequest, MalformedBody, nil)
	}
	return n, err
}
