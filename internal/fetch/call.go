package fetch

import (
	"context"
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
var ErrUnreachable = errors.New("remote API unreachable")

// NewClient returns an HTTP client for calls to one remote API: its own
// connection pool, no redirects followed (a redirect is an answer, never a
// hop that could carry forwarded credentials elsewhere).
func NewClient() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = 64
	t.ResponseHeaderTimeout = 0 // bounded per attempt by the context
	return &http.Client{
		Transport: t,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
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
