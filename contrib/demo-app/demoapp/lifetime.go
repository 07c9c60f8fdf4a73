package demoapp

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// ruleLifetime reads a rule's websocket.max_lifetime from portcullis's API
// (GET /rules/{id}), so the echo page can count down to the close that the
// proxy, not the app, will send. The rule is read on every page view: a
// hot-reloaded rule shows its new lifetime on the next one.
type ruleLifetime struct {
	api    string // portcullis's API base URL, without a trailing slash
	rule   string
	client *http.Client
}

func newRuleLifetime(api, rule string) (*ruleLifetime, error) {
	u, err := url.Parse(api)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("portcullis API URL %q is not an absolute http(s) URL", api)
	}
	if rule == "" {
		return nil, fmt.Errorf("a rule id is needed with the portcullis API URL %q", api)
	}
	return &ruleLifetime{api: strings.TrimSuffix(api, "/"), rule: rule, client: &http.Client{Timeout: 2 * time.Second}}, nil
}

// MaxLifetime returns the rule's own websocket.max_lifetime. A rule that
// does not set one (it inherits the configuration's) or an API that cannot
// be asked is an error: the page then shows no countdown rather than a
// wrong one.
func (l *ruleLifetime) MaxLifetime(ctx context.Context) (time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, l.api+"/rules/"+url.PathEscape(l.rule), nil)
	if err != nil {
		return 0, err
	}
	res, err := l.client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("portcullis API unreachable: %w", err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if err != nil {
		return 0, err
	}
	if res.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("portcullis API answered %d for rule %q", res.StatusCode, l.rule)
	}
	var r struct {
		WebSocket struct {
			MaxLifetime string `json:"max_lifetime"`
		} `json:"websocket"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return 0, err
	}
	if r.WebSocket.MaxLifetime == "" {
		return 0, fmt.Errorf("rule %q sets no websocket.max_lifetime", l.rule)
	}
	return time.ParseDuration(r.WebSocket.MaxLifetime)
}
