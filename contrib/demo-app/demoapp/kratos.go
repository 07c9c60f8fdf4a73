package demoapp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// kratosClient reads self-service flows from Kratos's public API on the
// server side. Browser flows are bound to the CSRF cookie Kratos set when
// the flow began, so every call forwards the visitor's Cookie header: the
// client never holds a credential of its own.
type kratosClient struct {
	base   string // public API base URL, without a trailing slash
	client *http.Client
}

func newKratosClient(base string) (*kratosClient, error) {
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("kratos public URL %q is not an absolute http(s) URL", base)
	}
	return &kratosClient{
		base:   strings.TrimSuffix(base, "/"),
		client: &http.Client{Timeout: 10 * time.Second},
	}, nil
}

// statusError is a Kratos answer other than 200. Status tells the pages
// whether to start a new flow (403 CSRF, 404 unknown, 410 expired) or to
// show an error.
type statusError struct {
	Status int
	Body   string
}

func (e *statusError) Error() string {
	return fmt.Sprintf("kratos answered %d: %s", e.Status, e.Body)
}

// restartable reports whether err means the flow cannot be used and a new
// one should begin: the flow is unknown, expired, or was started in another
// browser (its CSRF cookie is missing).
func restartable(err error) bool {
	var se *statusError
	if !errors.As(err, &se) {
		return false
	}
	switch se.Status {
	case http.StatusForbidden, http.StatusNotFound, http.StatusGone:
		return true
	}
	return false
}

// getJSON fetches path from the public API with the visitor's cookies and
// decodes a 200 answer into out.
func (k *kratosClient) getJSON(ctx context.Context, path string, cookie string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, k.base+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	if cookie != "" {
		req.Header.Set("Cookie", cookie)
	}
	res, err := k.client.Do(req)
	if err != nil {
		return fmt.Errorf("kratos unreachable: %w", err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("kratos answer: %w", err)
	}
	if res.StatusCode != http.StatusOK {
		return &statusError{Status: res.StatusCode, Body: shorten(string(body), 300)}
	}
	return json.Unmarshal(body, out)
}

// Flow fetches a login or registration flow by id.
func (k *kratosClient) Flow(ctx context.Context, kind, id, cookie string) (*flow, error) {
	var f flow
	err := k.getJSON(ctx, "/self-service/"+kind+"/flows?id="+url.QueryEscape(id), cookie, &f)
	if err != nil {
		return nil, err
	}
	return &f, nil
}

// LogoutURL asks Kratos for the signed logout link of the visitor's
// session; it fails when the visitor has no session.
func (k *kratosClient) LogoutURL(ctx context.Context, cookie string) (string, error) {
	var out struct {
		LogoutURL string `json:"logout_url"`
	}
	if err := k.getJSON(ctx, "/self-service/logout/browser", cookie, &out); err != nil {
		return "", err
	}
	return out.LogoutURL, nil
}

// FlowError fetches the error Kratos sent the browser to the error page
// with.
func (k *kratosClient) FlowError(ctx context.Context, id, cookie string) (*flowError, error) {
	var out struct {
		Error flowError `json:"error"`
	}
	if err := k.getJSON(ctx, "/self-service/errors?id="+url.QueryEscape(id), cookie, &out); err != nil {
		return nil, err
	}
	return &out.Error, nil
}

// flowError is the part of a Kratos error document the error page shows.
type flowError struct {
	Code    int    `json:"code"`
	Status  string `json:"status"`
	Message string `json:"message"`
	Reason  string `json:"reason"`
}

func shorten(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}
