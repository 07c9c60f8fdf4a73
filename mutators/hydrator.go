package mutators

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/portcullis-proxy/portcullis/internal/fetch"
	"github.com/portcullis-proxy/portcullis/internal/ttlcache"
	"github.com/portcullis-proxy/portcullis/pipeline"
)

// HydratorConfig configures the `hydrator` mutator (Oathkeeper's keys, plus
// api.timeout and api.forward_headers).
type HydratorConfig struct {
	API   HydratorAPIConfig   `json:"api"`
	Cache HydratorCacheConfig `json:"cache"`
}

// HydratorAPIConfig says how to reach the hydration API.
type HydratorAPIConfig struct {
	// URL receives a POST of the session as JSON. Required.
	URL string `json:"url"`
	// Auth adds HTTP basic credentials to the call.
	Auth *HydratorAuth `json:"auth,omitempty"`
	// Retry, when present, retries transport failures and 502/503/504;
	// absent, one attempt is made.
	Retry *fetch.Retry `json:"retry,omitempty"`
	// Timeout bounds one attempt. Default 2s.
	Timeout pipeline.Duration `json:"timeout"`
	// ForwardHeaders lists client request headers copied onto the call.
	// Default none (Oathkeeper copies every client header, credentials
	// included; here that must be asked for by name).
	ForwardHeaders []string `json:"forward_headers,omitempty"`
}

// HydratorAuth holds the API's credentials.
type HydratorAuth struct {
	Basic struct {
		Username string `json:"username"`
		Password string `json:"password"`
	} `json:"basic"`
}

// HydratorCacheConfig enables caching of the API's answers.
type HydratorCacheConfig struct {
	// Enabled turns the cache on. Default off.
	Enabled bool `json:"enabled"`
	// TTL is how long an answer is reused. Default 1m.
	TTL pipeline.Duration `json:"ttl"`
}

// SetDefaults sets api.timeout 2s and cache.ttl 1m.
func (c *HydratorConfig) SetDefaults() {
	c.API.Timeout = pipeline.Duration(2 * time.Second)
	c.Cache.TTL = pipeline.Duration(time.Minute)
}

// Validate requires an http(s) api.url.
func (c *HydratorConfig) Validate() error {
	u, err := url.Parse(c.API.URL)
	switch {
	case c.API.URL == "":
		return pipeline.Required("api.url")
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		return fmt.Errorf(`key "api.url": %q is not an http(s) URL`, fetch.Redact(c.API.URL))
	case c.API.Timeout <= 0:
		return errors.New(`key "api.timeout": must be positive`)
	case c.Cache.Enabled && c.Cache.TTL <= 0:
		return errors.New(`key "cache.ttl": must be positive`)
	}
	return nil
}

// NewHydrator builds the `hydrator` mutator, following Oathkeeper's
// contract: the session ({"subject", "extra", "header", "match_context"})
// is POSTed as JSON to api.url; a 200 answer is a session document whose
// subject must be unchanged, its "extra" replaces the session's extra and
// each of its "header" entries is set for the upstream.
//
// The call fails closed: an unreachable or slow API (per api.timeout,
// after api.retry) or a 5xx answer is a 503; any other non-200 answer, or
// an answer that is not a session of the same subject, is a 500. Neither
// lets the request through.
//
// With the cache enabled, answers are reused for cache.ttl for a call
// that would send exactly the same: the same configuration, the same
// session document (subject, extra, headers, the matched request and the
// client's headers in it) and the same forwarded header values. A header
// that changes on every request (a trace id) therefore defeats the cache.
//
// match_context.header carries the client's request headers, credentials
// included, as in Oathkeeper: the API must be trusted with them.
func NewHydrator(c *HydratorConfig, deps pipeline.Deps) (pipeline.Mutator, error) {
	client, err := deps.Client()
	if err != nil {
		return nil, err
	}
	h := &hydrator{
		url:    c.API.URL,
		caller: &fetch.Caller{Client: client, Timeout: c.API.Timeout.D(), Retry: c.API.Retry},
		ttl:    c.Cache.TTL.D(),
	}
	if c.API.Auth != nil {
		h.user, h.pass, h.basic = c.API.Auth.Basic.Username, c.API.Auth.Basic.Password, true
	}
	for _, name := range c.API.ForwardHeaders {
		h.forward = append(h.forward, http.CanonicalHeaderKey(name))
	}
	if c.Cache.Enabled {
		h.cache = ttlcache.New[[32]byte, []byte](10000)
		hash, err := pipeline.ConfigHash(c)
		if err != nil {
			return nil, err
		}
		h.cfgHash = hash
	}
	return h, nil
}

type hydrator struct {
	url        string
	caller     *fetch.Caller
	user, pass string
	basic      bool
	forward    []string
	cache      *ttlcache.Cache[[32]byte, []byte]
	ttl        time.Duration
	cfgHash    [32]byte // pipeline.ConfigHash of the effective config
}

var _ pipeline.Mutator = (*hydrator)(nil)

// hydratedSession is the part of the API's answer that is applied.
type hydratedSession struct {
	Subject string         `json:"subject"`
	Extra   map[string]any `json:"extra"`
	Header  http.Header    `json:"header"`
}

func (h *hydrator) Mutate(r *http.Request, s *pipeline.Session) error {
	body, err := json.Marshal(s)
	if err != nil {
		return pipeline.NewError(http.StatusInternalServerError, "hydrator failed", fmt.Errorf("encoding session: %w", err))
	}
	var key [32]byte
	if h.cache != nil {
		key = h.cacheKey(body, r)
		if answer, ok := h.cache.Get(key); ok {
			return h.apply(answer, s)
		}
	}
	header := make(http.Header, len(h.forward)+3)
	for _, name := range h.forward {
		if vs := r.Header.Values(name); len(vs) > 0 {
			header[name] = vs // Post sends copies
		}
	}
	header.Set("Content-Type", "application/json")
	header.Set("Accept", "application/json")
	if h.basic {
		header.Set("Authorization", fetch.BasicAuth(h.user, h.pass))
	}
	res, err := h.caller.Post(r.Context(), h.url, header, body)
	if err != nil {
		return pipeline.Unavailable("hydration service unavailable", err)
	}
	switch {
	case res.StatusCode == http.StatusOK:
	case res.StatusCode >= 500:
		return pipeline.Unavailable("hydration service unavailable", fmt.Errorf("status %d", res.StatusCode))
	case res.StatusCode == http.StatusUnauthorized || res.StatusCode == http.StatusForbidden:
		return pipeline.NewError(http.StatusInternalServerError, "hydrator failed", fmt.Errorf("hydration API refused the gateway's credentials (status %d)", res.StatusCode))
	default:
		return pipeline.NewError(http.StatusInternalServerError, "hydrator failed", fmt.Errorf("hydration API answered status %d", res.StatusCode))
	}
	if err := h.apply(res.Body, s); err != nil {
		return err
	}
	if h.cache != nil {
		h.cache.Set(key, res.Body, time.Now().Add(h.ttl))
	}
	return nil
}

// apply decodes an answer (fresh or cached: decoded each time, so no two
// requests share the maps) and merges it into s.
func (h *hydrator) apply(answer []byte, s *pipeline.Session) error {
	var got hydratedSession
	if err := json.Unmarshal(answer, &got); err != nil {
		return pipeline.NewError(http.StatusInternalServerError, "hydrator failed", errors.New("hydration API answer is not a session document"))
	}
	if got.Subject != s.Subject {
		return pipeline.NewError(http.StatusInternalServerError, "hydrator failed", errors.New("hydration API answered for a different subject"))
	}
	if got.Extra != nil {
		s.Extra = got.Extra
	}
	if s.Header == nil {
		s.Header = http.Header{}
	}
	for k, vs := range got.Header {
		if len(vs) > 0 {
			s.Header[http.CanonicalHeaderKey(k)] = vs
		}
	}
	return nil
}

// cacheKey hashes everything the answer may depend on: the effective
// configuration (endpoint, credentials, retry, forwarded header names) and
// everything the call sends — the session document as posted (subject,
// extra, headers so far, the matched request with the client's headers)
// and the forwarded client headers' values. Fields are length-prefixed,
// so no two inputs share an encoding.
func (h *hydrator) cacheKey(body []byte, r *http.Request) [32]byte {
	d := sha256.New()
	d.Write(h.cfgHash[:])
	var n [8]byte
	put := func(b []byte) {
		binary.BigEndian.PutUint64(n[:], uint64(len(b)))
		d.Write(n[:])
		d.Write(b)
	}
	put(body)
	for _, name := range h.forward {
		vs := r.Header.Values(name)
		binary.BigEndian.PutUint64(n[:], uint64(len(vs)))
		d.Write(n[:])
		for _, v := range vs {
			put([]byte(v))
		}
	}
	var key [32]byte
	d.Sum(key[:0])
	return key
}
