package authorizers

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/portcullis-proxy/portcullis/internal/fetch"
	"github.com/portcullis-proxy/portcullis/pipeline"
)

// maxForwardedBody bounds the request body the `remote` authorizer buffers
// to send to the decision API (and then hands on to the upstream).
const maxForwardedBody = 1 << 20

// defaultRemoteTimeout bounds one attempt to reach a decision API.
const defaultRemoteTimeout = 2 * time.Second

// remoteCommon holds the keys `remote` and `remote_json` share.
type remoteCommon struct {
	// Remote is the decision API's URL (http or https). Required.
	Remote string `json:"remote"`
	// Headers are set on the call, each a template rendered with the
	// session; a header that renders empty is not sent.
	Headers map[string]string `json:"headers,omitempty"`
	// ForwardResponseHeadersToUpstream lists headers of the API's 200
	// answer that are set on the upstream request (replacing what the
	// client sent under those names, even with an empty value).
	ForwardResponseHeadersToUpstream []string `json:"forward_response_headers_to_upstream,omitempty"`
	// Retry, when present, retries transport failures and 502/503/504
	// (see [fetch.Retry]); absent, one attempt is made.
	Retry *fetch.Retry `json:"retry,omitempty"`
	// Timeout bounds one attempt. Default 2s.
	Timeout pipeline.Duration `json:"timeout,omitempty"`
}

func (c *remoteCommon) setDefaults() { c.Timeout = pipeline.Duration(defaultRemoteTimeout) }

func (c *remoteCommon) validate() error {
	u, err := url.Parse(c.Remote)
	if c.Remote == "" {
		return pipeline.Required("remote")
	}
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf(`key "remote": %q is not an http(s) URL`, fetch.Redact(c.Remote))
	}
	if c.Timeout <= 0 {
		return errors.New(`key "timeout": must be positive`)
	}
	return nil
}

// remoteAuthorizer is the prepared form of both remote authorizers.
type remoteAuthorizer struct {
	name    string
	url     string
	headers []pipeline.NamedTemplate // by canonical header name
	// payload is the body template; nil forwards the request body.
	payload *pipeline.Template
	// jsonOnly requires the payload to render a JSON text and sends it as
	// application/json (remote_json).
	jsonOnly bool
	forward  []string
	caller   *fetch.Caller
}

// newRemoteAuthorizer prepares either remote authorizer. Calls go through
// deps.HTTPClient, which follows no redirects.
func newRemoteAuthorizer(name string, c *remoteCommon, payload string, jsonOnly bool, deps pipeline.Deps) (*remoteAuthorizer, error) {
	client, err := deps.Client()
	if err != nil {
		return nil, err
	}
	a := &remoteAuthorizer{
		name:     name,
		url:      c.Remote,
		jsonOnly: jsonOnly,
		caller:   &fetch.Caller{Client: client, Timeout: c.Timeout.D(), Retry: c.Retry},
	}
	for _, h := range c.ForwardResponseHeadersToUpstream {
		a.forward = append(a.forward, http.CanonicalHeaderKey(h))
	}
	if a.headers, err = pipeline.ParseTemplates("headers", c.Headers); err != nil {
		return nil, err
	}
	for i := range a.headers {
		a.headers[i].Name = http.CanonicalHeaderKey(a.headers[i].Name)
	}
	if payload != "" {
		t, err := pipeline.ParseTemplate("payload", payload)
		if err != nil {
			return nil, err
		}
		a.payload = t
	}
	return a, nil
}

func (a *remoteAuthorizer) fail(status int, reason string, cause error) error {
	return pipeline.NewError(status, reason, fmt.Errorf("%s authorizer: %w", a.name, cause))
}

func (a *remoteAuthorizer) Authorize(r *http.Request, s *pipeline.Session) error {
	body, contentType, err := a.body(r, s)
	if err != nil {
		return err
	}
	header := http.Header{}
	header.Set("Content-Type", contentType)
	// The client's credential goes to the decision API (Oathkeeper does the
	// same): the API decides on it. The API must be trusted with it.
	if authz := r.Header.Get("Authorization"); authz != "" {
		header.Set("Authorization", authz)
	}
	for _, h := range a.headers {
		v, err := h.Execute(s)
		if err != nil {
			return a.fail(http.StatusInternalServerError, "authorizer failed", fmt.Errorf("header %s: %w", h.Name, err))
		}
		if v != "" {
			header.Set(h.Name, v)
		}
	}
	res, err := a.caller.Post(r.Context(), a.url, header, body)
	if err != nil {
		// Unreachable, timed out, 5xx after retries: deny.
		return a.fail(http.StatusServiceUnavailable, "authorization service unavailable", err)
	}
	switch res.StatusCode {
	case http.StatusOK:
		for _, h := range a.forward {
			s.SetHeader(h, res.Header.Get(h))
		}
		return nil
	case http.StatusForbidden:
		return pipeline.Forbidden("access denied by the authorization service", nil)
	case http.StatusTooManyRequests:
		e := pipeline.NewError(http.StatusTooManyRequests, "authorization service rate limit", nil)
		if ra := res.Header.Get("Retry-After"); ra != "" {
			e.Header = http.Header{"Retry-After": {ra}}
		}
		return e
	default:
		if res.StatusCode >= 500 {
			return a.fail(http.StatusServiceUnavailable, "authorization service unavailable", fmt.Errorf("status %d", res.StatusCode))
		}
		// Any other answer (400, 401, 404, ...) is not a yes, and not a
		// considered no either: as in Oathkeeper, a 500.
		return a.fail(http.StatusInternalServerError, "unexpected answer from the authorization service", fmt.Errorf("expected status 200 or 403, got %d", res.StatusCode))
	}
}

// body renders the payload, or buffers the request body and puts an
// identical copy back on r so the upstream still receives it.
func (a *remoteAuthorizer) body(r *http.Request, s *pipeline.Session) ([]byte, string, error) {
	if a.payload != nil {
		out, err := a.payload.Execute(s)
		if err != nil {
			return nil, "", a.fail(http.StatusInternalServerError, "authorizer failed", fmt.Errorf("payload: %w", err))
		}
		b := []byte(out)
		if json.Valid(b) {
			return b, "application/json", nil
		}
		if a.jsonOnly {
			return nil, "", a.fail(http.StatusInternalServerError, "authorizer failed", errors.New("payload does not render a JSON text"))
		}
		return b, "text/plain; charset=utf-8", nil
	}
	ct := r.Header.Get("Content-Type")
	if r.Body == nil || r.Body == http.NoBody {
		return nil, ct, nil
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, maxForwardedBody+1))
	r.Body.Close()
	if err != nil {
		return nil, "", pipeline.NewError(http.StatusBadRequest, "request body could not be read", err)
	}
	if len(b) > maxForwardedBody {
		return nil, "", pipeline.NewError(http.StatusRequestEntityTooLarge, "request body too large for the remote authorizer", nil)
	}
	r.Body = io.NopCloser(bytes.NewReader(b))
	r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
	return b, ct, nil
}
