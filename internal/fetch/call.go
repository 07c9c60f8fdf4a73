package fetch

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/portcullis-proxy/portcullis/pipeline"
)

// MaxResponseBytes bounds the body of a decision API's answer that a
// [Caller] buffers.
const MaxResponseBytes = 1 << 20

// Retry is Oathkeeper's `retry` block: failed attempts (transport errors,
// 502, 503, 504) are retried with an exponential back-off that starts at
// 50ms and never waits longer than MaxDelay between attempts, until
// GiveUpAfter has passed since the first attempt.
type Retry struct {
	MaxDelay    pipeline.Duration `json:"max_delay"`
	GiveUpAfter pipeline.Duration `json:"give_up_after"`
}

// SetDefaults sets max_delay 100ms and give_up_after 1s.
func (r *Retry) SetDefaults() {
	r.MaxDelay = pipeline.Duration(100 * time.Millisecond)
	r.GiveUpAfter = pipeline.Duration(time.Second)
}

// Validate rejects negative durations.
func (r *Retry) Validate() error {
	if r.MaxDelay < 0 || r.GiveUpAfter < 0 {
		return errors.New("retry: durations must not be negative")
	}
	return nil
}

// UnmarshalJSON applies the defaults for keys the block leaves out and
// rejects unknown keys.
func (r *Retry) UnmarshalJSON(b []byte) error {
	type plain Retry
	p := plain{}
	(*Retry)(&p).SetDefaults()
	if err := pipeline.DecodeStrict(b, &p); err != nil {
		return fmt.Errorf("retry: %w", err)
	}
	*r = Retry(p)
	return r.Validate()
}

// Caller sends requests to a remote API: one attempt is bounded by
// Timeout, failed attempts are retried per Retry (nil: a single attempt),
// and the answer is read whole (up to [MaxResponseBytes]) before Do
// returns, so no connection outlives the call.
type Caller struct {
	Client  *http.Client
	Timeout time.Duration
	Retry   *Retry
}

// Response is a buffered answer.
type Response struct {
	StatusCode int
	Header     http.Header
	Body       []byte
}

// ErrUnreachable marks a call that never got an answer worth reading: the
// peer could not be reached, timed out, or kept answering 502/503/504.
// Callers turn it into a 503 and deny (fail closed).
const ErrUnreachable pipeline.Sentinel = "remote API unreachable"

// ClientOptions configures [NewClient]. Zero fields take the documented
// defaults.
type ClientOptions struct {
	// RootCAs are the CAs trusted for https; nil: the system pool.
	RootCAs *x509.CertPool
	// ConnectTimeout bounds opening a TCP connection. Default
	// [DefaultConnectTimeout].
	ConnectTimeout time.Duration
}

// DefaultConnectTimeout is [ClientOptions.ConnectTimeout]'s default.
const DefaultConnectTimeout = 10 * time.Second

// NewClient returns the HTTP client for calls to remote APIs and documents:
// one pool of connections (up to 128 idle per host) shared by every call
// made with it, proxies from the environment (HTTPS_PROXY, NO_PROXY), TLS
// 1.2 or later, no overall timeout (each call is bounded by its context)
// and no redirects followed: a redirect is an answer, never a hop that
// could carry forwarded credentials elsewhere.
func NewClient(o ClientOptions) *http.Client {
	if o.ConnectTimeout <= 0 {
		o.ConnectTimeout = DefaultConnectTimeout
	}
	t := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: o.ConnectTimeout, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:     true,
		TLSClientConfig:       &tls.Config{RootCAs: o.RootCAs, MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
		MaxIdleConns:          256,
		MaxIdleConnsPerHost:   128,
		IdleConnTimeout:       90 * time.Second,
	}
	return &http.Client{
		Transport: t,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// FollowingRedirects returns a copy of c that follows redirects as
// net/http does by default (up to ten; credentials dropped on a hop to
// another host), over c's connections: documents (key sets, policies) and
// session stores have always been read that way.
func FollowingRedirects(c *http.Client) *http.Client {
	f := *c
	f.CheckRedirect = nil
	return &f
}

// Do sends the request newReq builds (once per attempt, since a body is
// consumed by sending it). A 502/503/504 answer that is retried to the end
// is returned as an error wrapping [ErrUnreachable], as is a transport
// failure; any other answer is returned for the caller to judge.
func (c *Caller) Do(ctx context.Context, newReq func(ctx context.Context) (*http.Request, error)) (*Response, error) {
	start := time.Now()
	delay := 50 * time.Millisecond
	for attempt := 1; ; attempt++ {
		res, err := c.once(ctx, newReq)
		if err == nil && !retryableStatus(res.StatusCode) {
			return res, nil
		}
		if err == nil {
			err = fmt.Errorf("%w: status %d", ErrUnreachable, res.StatusCode)
		}
		if c.Retry == nil || ctx.Err() != nil {
			return nil, err
		}
		if delay > c.Retry.MaxDelay.D() {
			delay = c.Retry.MaxDelay.D()
		}
		if time.Since(start)+delay >= c.Retry.GiveUpAfter.D() {
			return nil, fmt.Errorf("%w (gave up after %d attempts)", err, attempt)
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("%w: %w", ErrUnreachable, ctx.Err())
		case <-t.C:
		}
		delay *= 2
	}
}

// Post sends body to url with a copy of header on each attempt, as [Caller.Do]
// does; header is neither changed nor kept.
func (c *Caller) Post(ctx context.Context, url string, header http.Header, body []byte) (*Response, error) {
	return c.Do(ctx, func(ctx context.Context) (*http.Request, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
		if err != nil {
			return nil, err
		}
		req.Header = header.Clone()
		return req, nil
	})
}

// BasicAuth is the Authorization header value of HTTP Basic
// authentication (RFC 7617) for user and password, as
// [http.Request.SetBasicAuth] sets it.
func BasicAuth(user, password string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+password))
}

func (c *Caller) once(ctx context.Context, newReq func(ctx context.Context) (*http.Request, error)) (*Response, error) {
	if c.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.Timeout)
		defer cancel()
	}
	req, err := newReq(ctx)
	if err != nil {
		return nil, err
	}
	client := c.Client
	if client == nil {
		client = http.DefaultClient
	}
	res, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnreachable, describeTransport(err))
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, MaxResponseBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%w: reading answer: %w", ErrUnreachable, describeTransport(err))
	}
	if len(body) > MaxResponseBytes {
		return nil, fmt.Errorf("answer larger than %d bytes", MaxResponseBytes)
	}
	return &Response{StatusCode: res.StatusCode, Header: res.Header, Body: body}, nil
}

func retryableStatus(code int) bool {
	return code == http.StatusBadGateway || code == http.StatusServiceUnavailable || code == http.StatusGatewayTimeout
}

// describeTransport keeps the kind of a transport failure (timeout,
// refused) and drops the URL, which may carry a query string.
func describeTransport(err error) error {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return errors.New("timeout")
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return errors.New("timeout")
	}
	return stripURL(err)
}
