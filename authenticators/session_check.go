package authenticators

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	kratos "github.com/ory/kratos-client-go"
	"github.com/tidwall/gjson"

	"github.com/portcullis-proxy/portcullis/internal/fetch"
	"github.com/portcullis-proxy/portcullis/pipeline"
)

// SessionCheckConfig holds the keys cookie_session and bearer_token share:
// where to check a session and how to read the answer. The names and
// meanings are Oathkeeper's.
//
// A check_session_url whose path ends in /sessions/whoami (without a query,
// and with force_method unset or GET) is taken to be Ory Kratos: the session
// is fetched with the Kratos SDK (FrontendAPI.ToSession), arrives typed, and
// an inactive or expired session is a rejection. preserve_path and
// preserve_query do not apply there, since Kratos answers only at that path.
//
// Any other URL gets Oathkeeper's plain HTTP semantics: the request's path
// and query replace the URL's unless preserved, the request's method is used
// unless forced, the listed headers are forwarded, and a 200 answer is a
// valid session whose JSON body subject_from and extra_from read.
type SessionCheckConfig struct {
	// CheckSessionURL is the session store's endpoint (required).
	CheckSessionURL string `json:"check_session_url"`
	// PreservePath keeps the URL's path; otherwise the request's path
	// replaces it (plain HTTP only).
	PreservePath bool `json:"preserve_path"`
	// PreserveQuery keeps the URL's query (default true, as in
	// Oathkeeper); false makes the request's query replace it (plain HTTP
	// only).
	PreserveQuery bool `json:"preserve_query"`
	// PreserveHost sends the request's Host as X-Forwarded-Host.
	PreserveHost bool `json:"preserve_host"`
	// ForceMethod replaces the request's method (plain HTTP only).
	ForceMethod string `json:"force_method"`
	// ForwardHTTPHeaders lists request headers copied to the check. The
	// credential is always sent (the Cookie header for cookie_session,
	// Authorization: Bearer or, for Kratos, X-Session-Token for
	// bearer_token), whatever this list says.
	ForwardHTTPHeaders []string `json:"forward_http_headers"`
	// AdditionalHeaders are set on every check.
	AdditionalHeaders map[string]string `json:"additional_headers"`
	// SubjectFrom is a GJSON path to the subject in the session document
	// (default "subject", as in Oathkeeper; a Kratos session's identity is
	// "identity.id"). A document without it gives an empty subject.
	SubjectFrom string `json:"subject_from"`
	// ExtraFrom is a GJSON path to the extra data (default "extra", as in
	// Oathkeeper; "@this" keeps the whole session document).
	ExtraFrom string `json:"extra_from"`
	// Timeout bounds one check (default 5s). A store that does not answer
	// in time denies the request with 503.
	Timeout pipeline.Duration `json:"timeout"`
	// Cache reuses successful checks for a short time (see [CacheConfig]).
	Cache CacheConfig `json:"cache"`
}

// SetDefaults sets Oathkeeper's defaults — subject_from "subject",
// extra_from "extra", preserve_query true — a 5s timeout and the cache
// defaults. A Kratos session's subject is at "identity.id": configurations
// for Kratos set subject_from (the quickstart does).
func (c *SessionCheckConfig) SetDefaults() {
	c.SubjectFrom = "subject"
	c.ExtraFrom = "extra"
	c.PreserveQuery = true
	c.Timeout = pipeline.Duration(5 * time.Second)
	c.Cache.SetDefaults()
}

// Validate checks the URL, the timeout and the cache block.
func (c *SessionCheckConfig) Validate() error {
	if c.CheckSessionURL == "" {
		return pipeline.Required("check_session_url")
	}
	u, err := url.Parse(c.CheckSessionURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("check_session_url: %q is not an absolute http(s) URL", c.CheckSessionURL)
	}
	if c.Timeout <= 0 {
		return errors.New("timeout: must be positive")
	}
	if c.SubjectFrom == "" {
		return errors.New("subject_from: must not be empty")
	}
	if c.ExtraFrom == "" {
		return errors.New("extra_from: must not be empty")
	}
	return c.Cache.Validate()
}

// maxSessionBody caps a plain session store's answer.
const maxSessionBody = 4 << 20

// sessionChecker asks a session store about a credential, through the
// cache when one is configured. It is built once per rule.
type sessionChecker struct {
	name        string // authenticator name, for Session.Authenticator
	kratos      kratos.FrontendAPI
	client      *http.Client
	checkURL    *url.URL
	cfg         *SessionCheckConfig
	forward     []string // canonical names of forwarded headers
	timeout     time.Duration
	subjectFrom string
	extraFrom   string
	cache       *sessionCache
	cfgHash     [32]byte // pipeline.ConfigHash of cfg and the handler name
	// revocations, when set, says which sessions were revoked: a cached
	// answer for one is dropped, never served.
	revocations pipeline.RevocationView
}

// cached returns the cache's answer for key unless the session or its
// subject was revoked since, in which case the entry is evicted.
func (c *sessionChecker) cached(key cacheKey) (*checkedSession, bool) {
	v, ok := c.cache.get(key)
	if ok && c.revocations != nil && c.revocations.Revoked(v.sessionID, v.subject) {
		c.cache.remove(key)
		return nil, false
	}
	return v, ok
}

// newSessionChecker prepares the checker. credentialHeader is the header
// the handler sends its credential in (Cookie for cookie_session,
// Authorization for bearer_token). The credential is always sent, set
// explicitly, so the credential headers are left out of the forwarded
// ones: the request's own Cookie header would otherwise carry cookies that
// `only` leaves out, and the cache key would change with them.
//
// Checks go over deps.HTTPClient's connections, following redirects as
// session checks always have; cached answers for sessions and subjects
// deps.Revocations reports revoked are dropped.
func newSessionChecker(name string, c *SessionCheckConfig, credentialHeader string, deps pipeline.Deps) (*sessionChecker, error) {
	client, err := deps.Client()
	if err != nil {
		return nil, err
	}
	client = fetch.FollowingRedirects(client)
	u, _ := url.Parse(c.CheckSessionURL) // validated
	ch := &sessionChecker{
		name:        name,
		client:      client,
		revocations: deps.Revocations,
		checkURL:    u,
		cfg:         c,
		timeout:     c.Timeout.D(),
		subjectFrom: c.SubjectFrom,
		extraFrom:   c.ExtraFrom,
		cache:       newSessionCache(c.Cache),
	}
	// SessionCheckConfig marshals (strings, maps, durations); a failure
	// would leave the zero hash, which the per-rule cache does not need.
	ch.cfgHash, _ = pipeline.ConfigHash(struct {
		Name string
		Cfg  *SessionCheckConfig
	}{name, c})
	credential := []string{credentialHeader}
	if base, ok := kratosBase(u, c.ForceMethod); ok {
		cfg := kratos.NewConfiguration()
		cfg.Servers = kratos.ServerConfigurations{{URL: base}}
		cfg.UserAgent = "portcullis"
		sdk := *client
		sdk.Transport = contextHeaderTransport{transportOf(client)}
		cfg.HTTPClient = &sdk
		ch.kratos = kratos.NewAPIClient(cfg).FrontendAPI
		// Kratos reads a session from any of these; only the one the SDK
		// is handed may reach it.
		credential = []string{"Cookie", "Authorization", "X-Session-Token"}
	}
	for _, h := range c.ForwardHTTPHeaders {
		h = http.CanonicalHeaderKey(h)
		if !slices.Contains(credential, h) && !slices.Contains(ch.forward, h) {
			ch.forward = append(ch.forward, h)
		}
	}
	return ch, nil
}

// transportOf is c's transport, or the one net/http uses for a nil one.
func transportOf(c *http.Client) http.RoundTripper {
	if c.Transport != nil {
		return c.Transport
	}
	return http.DefaultTransport
}

// kratosBase reports whether u is a Kratos whoami endpoint and returns the
// SDK's base URL (u without /sessions/whoami).
func kratosBase(u *url.URL, forceMethod string) (string, bool) {
	const whoami = "/sessions/whoami"
	if u.RawQuery != "" || (forceMethod != "" && !strings.EqualFold(forceMethod, http.MethodGet)) {
		return "", false
	}
	p := strings.TrimSuffix(u.Path, "/")
	if !strings.HasSuffix(p, whoami) {
		return "", false
	}
	base := *u
	base.Path = strings.TrimSuffix(p, whoami)
	base.RawPath = ""
	base.Fragment = ""
	return strings.TrimSuffix(base.String(), "/"), true
}

// isKratos reports whether checks go through the Kratos SDK.
func (c *sessionChecker) isKratos() bool { return c.kratos != nil }

// checkInput is everything one check sends. It is derived from the request
// once and kept by the Revalidator, so a long-lived connection can be
// re-checked without holding on to the request.
type checkInput struct {
	cfg    [32]byte // the checker's configuration hash (pipeline.ConfigHash)
	method string   // plain mode: the method of the check
	url    string   // plain mode: the URL of the check
	cookie string   // Cookie header value carrying the credential
	token  string   // session token (bearer_token)
	// authorization, when set, is the Authorization header sent to a plain
	// store instead of "Bearer <token>": the client's own header value.
	authorization string
	header        http.Header // forwarded and additional headers; nil if none
}

// input derives the check for r carrying the credential cookie or token.
func (c *sessionChecker) input(r *http.Request, cookie, token string) checkInput {
	in := checkInput{cfg: c.cfgHash, cookie: cookie, token: token}
	for _, h := range c.forward {
		if v := r.Header.Values(h); len(v) > 0 {
			if in.header == nil {
				in.header = http.Header{}
			}
			in.header[h] = v
		}
	}
	for k, v := range c.cfg.AdditionalHeaders {
		if in.header == nil {
			in.header = http.Header{}
		}
		in.header.Set(k, v)
	}
	if c.cfg.PreserveHost {
		if in.header == nil {
			in.header = http.Header{}
		}
		in.header.Set("X-Forwarded-Host", r.Host)
	}
	if c.isKratos() {
		return in
	}
	// Oathkeeper's request to a plain session store.
	u := *c.checkURL
	if !c.cfg.PreservePath {
		u.Path, u.RawPath = r.URL.Path, r.URL.RawPath
	}
	if !c.cfg.PreserveQuery {
		u.RawQuery = r.URL.RawQuery
	}
	in.url = u.String()
	in.method = r.Method
	if c.cfg.ForceMethod != "" {
		in.method = strings.ToUpper(c.cfg.ForceMethod)
	}
	return in
}

// key hashes the checker's effective configuration and everything the
// check sends: two requests with equal keys get the same answer from the
// store, read the same way (subject_from, extra_from). Each field is
// prefixed with its length as a uvarint, a prefix-free code, so no two
// inputs share an encoding. The encoding is built in a stack buffer when it
// fits (a Kratos session cookie does), keeping the cache-hit path free of
// allocations here.
func (in *checkInput) key() cacheKey {
	var stack [1024]byte
	b := append(stack[:0], in.cfg[:]...)
	b = appendField(b, in.method)
	b = appendField(b, in.url)
	b = appendField(b, in.cookie)
	b = appendField(b, in.token)
	b = appendField(b, in.authorization)
	if len(in.header) > 0 {
		for _, k := range slices.Sorted(maps.Keys(in.header)) {
			b = appendField(b, k)
			b = binary.AppendUvarint(b, uint64(len(in.header[k])))
			for _, v := range in.header[k] {
				b = appendField(b, v)
			}
		}
	}
	return sha256.Sum256(b)
}

// credentialID is [pipeline.CredentialID] of the credential in.
func (in *checkInput) credentialID() string {
	return pipeline.CredentialID(in.cookie + "\x00" + in.token)
}

// appendField appends s to b, preceded by its length.
func appendField(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

// authenticate checks the credential in `in` and fills s.
//
// What s receives from a cached check is shared with the cache and with
// every other request the entry answers: the strings, the expiry and the
// values inside Extra. Only Extra's top level is the request's own, a
// shallow copy, so a stage that sets or deletes a key of s.Extra (or
// replaces the map, as the hydrator does) never reaches the cache; a stage
// must not modify a map or slice it finds inside Extra. The session's own
// empty Extra (from [pipeline.NewSession]) is kept when the store gave
// none. The [pipeline.Revalidator] is the request's own: it keeps the
// credential, which the cache does not.
func (c *sessionChecker) authenticate(r *http.Request, s *pipeline.Session, in *checkInput) error {
	key := in.key()
	v, err := c.lookup(r.Context(), key, in)
	if err != nil {
		return err
	}
	s.Subject = v.subject
	switch {
	case v.extra != nil:
		s.Extra = maps.Clone(v.extra)
	case s.Extra == nil || len(s.Extra) > 0:
		s.Extra = map[string]any{}
	}
	s.SessionID = v.sessionID
	s.ExpiresAt = v.expiresAt
	s.Authenticator = c.name
	s.CredentialID = v.credentialID
	s.Revalidator = &revalidation{checker: c, in: *in, key: key, subject: v.subject}
	return nil
}

// lookup answers from the cache or runs one shared check for all
// concurrent requests with the same key. in is only read here: a miss
// copies it, so a hit does not move the caller's input to the heap.
func (c *sessionChecker) lookup(ctx context.Context, key cacheKey, in *checkInput) (*checkedSession, error) {
	if c.cache == nil {
		ctx, cancel := context.WithTimeout(ctx, c.timeout)
		defer cancel()
		v, err := c.check(ctx, in)
		if err != nil {
			return nil, err
		}
		v.credentialID = in.credentialID()
		return v, nil
	}
	if v, ok := c.cached(key); ok {
		return v, nil
	}
	return c.miss(ctx, key, *in)
}

// miss runs one shared check for every concurrent request with key and
// stores the answer.
func (c *sessionChecker) miss(ctx context.Context, key cacheKey, in checkInput) (*checkedSession, error) {
	// The shared check must not end when the first caller goes away, so it
	// runs on a context of its own bounded by the timeout.
	detached := context.WithoutCancel(ctx)
	ch := c.cache.flight.DoChan(string(key[:]), func() (any, error) {
		// A flight that ended between our miss and this call has filled
		// the cache already.
		if v, ok := c.cached(key); ok {
			return v, nil
		}
		ctx, cancel := context.WithTimeout(detached, c.timeout)
		defer cancel()
		v, err := c.check(ctx, &in)
		if err != nil {
			return nil, err
		}
		v.credentialID = in.credentialID()
		c.cache.put(key, v)
		return v, nil
	})
	select {
	case res := <-ch:
		if res.Err != nil {
			return nil, res.Err
		}
		return res.Val.(*checkedSession), nil
	case <-ctx.Done():
		return nil, pipeline.Unavailable("identity provider unavailable", ctx.Err())
	}
}

// check asks the store once, bypassing the cache.
func (c *sessionChecker) check(ctx context.Context, in *checkInput) (*checkedSession, error) {
	if c.isKratos() {
		return c.checkKratos(ctx, in)
	}
	return c.checkPlain(ctx, in)
}

// checkKratos asks Kratos's /sessions/whoami through the SDK.
func (c *sessionChecker) checkKratos(ctx context.Context, in *checkInput) (*checkedSession, error) {
	if in.header != nil {
		ctx = context.WithValue(ctx, contextHeaderKey{}, in.header)
	}
	req := c.kratos.ToSession(ctx)
	if in.cookie != "" {
		req = req.Cookie(in.cookie)
	}
	if in.token != "" {
		req = req.XSessionToken(in.token)
	}
	sess, res, err := req.Execute()
	if res == nil {
		return nil, pipeline.Unavailable("identity provider unavailable", sanitize(err))
	}
	defer res.Body.Close()
	if rejected := statusError(res.StatusCode); rejected != nil {
		return nil, rejected
	}
	if err != nil || sess == nil {
		return nil, pipeline.Unavailable("identity provider unavailable",
			fmt.Errorf("unreadable session document: %w", sanitize(err)))
	}
	if sess.Active != nil && !*sess.Active {
		return nil, pipeline.Unauthorized("session is not active", nil)
	}
	var expires time.Time
	if sess.ExpiresAt != nil {
		expires = *sess.ExpiresAt
		if !time.Now().Before(expires) {
			return nil, pipeline.Unauthorized("session has expired", nil)
		}
	}
	// The SDK keeps the body readable: subject_from and extra_from are
	// evaluated over Kratos's own JSON, as Oathkeeper does.
	body, err := io.ReadAll(res.Body)
	if err != nil {
		return nil, pipeline.Unavailable("identity provider unavailable", err)
	}
	v, err := c.extract(body)
	if err != nil {
		return nil, err
	}
	v.sessionID = sess.Id
	v.expiresAt = expires
	return v, nil
}

// checkPlain is Oathkeeper's request to a session store: 200 is a valid
// session, any other answer below 500 a rejection.
func (c *sessionChecker) checkPlain(ctx context.Context, in *checkInput) (*checkedSession, error) {
	req, err := http.NewRequestWithContext(ctx, in.method, in.url, nil)
	if err != nil {
		return nil, pipeline.NewError(http.StatusInternalServerError, "invalid session check request", sanitize(err))
	}
	req.Header = in.header.Clone()
	if req.Header == nil {
		req.Header = http.Header{}
	}
	if in.cookie != "" {
		req.Header.Set("Cookie", in.cookie)
	}
	switch {
	case in.authorization != "":
		req.Header.Set("Authorization", in.authorization)
	case in.token != "":
		req.Header.Set("Authorization", "Bearer "+in.token)
	}
	res, err := c.client.Do(req)
	if err != nil {
		return nil, pipeline.Unavailable("identity provider unavailable", sanitize(err))
	}
	defer res.Body.Close()
	if rejected := statusError(res.StatusCode); rejected != nil {
		return nil, rejected
	}
	if res.StatusCode != http.StatusOK {
		return nil, pipeline.Unauthorized("session is not valid", fmt.Errorf("session store answered %d", res.StatusCode))
	}
	body, err := io.ReadAll(io.LimitReader(res.Body, maxSessionBody+1))
	if err != nil {
		return nil, pipeline.Unavailable("identity provider unavailable", sanitize(err))
	}
	if len(body) > maxSessionBody {
		return nil, pipeline.Unavailable("identity provider unavailable", errors.New("session document too large"))
	}
	if len(bytes.TrimSpace(body)) == 0 {
		// Oathkeeper reads an empty 200 as a valid session with an empty
		// subject: the store vouched for the credential and said nothing
		// more. The authorizer decides what an empty subject may do.
		return &checkedSession{}, nil
	}
	v, err := c.extract(body)
	if err != nil {
		return nil, err
	}
	// A store that says when the session ends, or that it is inactive
	// (Kratos's shape), is believed.
	if a := gjson.GetBytes(body, "active"); a.Type == gjson.False {
		return nil, pipeline.Unauthorized("session is not active", nil)
	}
	if e := gjson.GetBytes(body, "expires_at"); e.Type == gjson.String {
		if t, err := time.Parse(time.RFC3339Nano, e.Str); err == nil {
			if !time.Now().Before(t) {
				return nil, pipeline.Unauthorized("session has expired", nil)
			}
			v.expiresAt = t
		}
	}
	return v, nil
}

// statusError maps a store's non-200 status: 5xx and 429 mean the store
// cannot answer (503, fail closed), other 4xx mean the credential is not
// accepted (401). It returns nil for 2xx and 3xx.
func statusError(status int) *pipeline.Error {
	switch {
	case status >= 500 || status == http.StatusTooManyRequests:
		return pipeline.Unavailable("identity provider unavailable", fmt.Errorf("session store answered %d", status))
	case status >= 400:
		return pipeline.Unauthorized("session is not valid", fmt.Errorf("session store answered %d", status))
	}
	return nil
}

// extract evaluates subject_from and extra_from over the session document,
// as Oathkeeper does: the subject must be a JSON string or absent (an
// empty subject, as in Oathkeeper: the store vouched for the credential),
// the extra a JSON object (or absent).
func (c *sessionChecker) extract(body []byte) (*checkedSession, error) {
	if !gjson.ValidBytes(body) {
		return nil, pipeline.Unavailable("identity provider unavailable", errors.New("session document is not JSON"))
	}
	v := &checkedSession{}
	sub := gjson.GetBytes(body, c.subjectFrom)
	switch sub.Type {
	case gjson.String:
		v.subject = sub.Str
	case gjson.Null:
	default:
		return nil, pipeline.Forbidden("session subject is not a string",
			fmt.Errorf("subject_from %q did not select a string", c.subjectFrom))
	}
	if ex := gjson.GetBytes(body, c.extraFrom); ex.Exists() && ex.Type != gjson.Null {
		if !ex.IsObject() {
			return nil, pipeline.Forbidden("session extra is not an object",
				fmt.Errorf("extra_from %q did not select an object", c.extraFrom))
		}
		if err := json.Unmarshal([]byte(ex.Raw), &v.extra); err != nil {
			return nil, pipeline.Forbidden("session extra is not an object", err)
		}
	}
	return v, nil
}

// sanitize drops what an HTTP client error says about the URL (which may
// carry a query-parameter credential in plain mode) and keeps the reason.
func sanitize(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s: %w", ue.Op, ue.Err)
	}
	return err
}

// revalidation is the [pipeline.Revalidator] of a session admitted by a
// session authenticator: it re-sends the original credential, bypassing the
// cache, and refreshes or drops the cache entry with the answer.
type revalidation struct {
	checker *sessionChecker
	in      checkInput
	key     cacheKey
	subject string
}

// Revalidate re-checks the credential and returns the session as the store
// describes it now (subject_from and extra_from evaluated again). A
// rejected credential, or one that now belongs to another subject, returns
// a 401/403 *pipeline.Error; an unreachable store a 503.
func (rv *revalidation) Revalidate(ctx context.Context) (pipeline.Identity, error) {
	c := rv.checker
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	v, err := c.check(ctx, &rv.in)
	if err == nil && v.subject != rv.subject {
		err = pipeline.Unauthorized("session now belongs to another subject", nil)
	}
	if err != nil {
		if c.cache != nil && pipeline.StatusOf(err) != http.StatusServiceUnavailable {
			c.cache.remove(rv.key)
		}
		return pipeline.Identity{}, err
	}
	if c.cache != nil {
		v.credentialID = rv.in.credentialID()
		c.cache.put(rv.key, v)
	}
	// v is shared with the cache: the caller gets an extra of its own.
	id := pipeline.Identity{Subject: v.subject, Extra: map[string]any{}, ExpiresAt: v.expiresAt}
	if v.extra != nil {
		id.Extra = maps.Clone(v.extra)
	}
	return id, nil
}

// contextHeaderKey carries per-check headers (forwarded, additional,
// X-Forwarded-Host) to contextHeaderTransport, since the Kratos SDK only
// sets the credential headers itself.
type contextHeaderKey struct{}

type contextHeaderTransport struct{ base http.RoundTripper }

func (t contextHeaderTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	h, _ := r.Context().Value(contextHeaderKey{}).(http.Header)
	if len(h) == 0 {
		return t.base.RoundTrip(r)
	}
	r = r.Clone(r.Context())
	for k, v := range h {
		r.Header[k] = v
	}
	return t.base.RoundTrip(r)
}
