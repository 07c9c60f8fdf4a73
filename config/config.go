// Package config loads portcullis's configuration file: Oathkeeper's
// structure (serve, access_rules, authenticators, authorizers, mutators,
// errors, log) plus portcullis's websocket block, in YAML or JSON, with
// environment variables overriding file values the way Oathkeeper names
// them (the key path upper-cased with _ for .: SERVE_PROXY_PORT).
package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/portcullis-proxy/portcullis/internal/yamlpos"
	"github.com/portcullis-proxy/portcullis/pipeline"
	"github.com/portcullis-proxy/portcullis/rules"
)

// Config is the whole configuration.
type Config struct {
	Serve          Serve                    `koanf:"serve"`
	AccessRules    AccessRules              `koanf:"access_rules"`
	Authenticators map[string]HandlerConfig `koanf:"authenticators"`
	Authorizers    map[string]HandlerConfig `koanf:"authorizers"`
	Mutators       map[string]HandlerConfig `koanf:"mutators"`
	Errors         Errors                   `koanf:"errors"`
	Log            Log                      `koanf:"log"`
	Tracing        Tracing                  `koanf:"tracing"`
	Revocation     Revocation               `koanf:"revocation"`
	// HTTPClient is how handlers reach the services they call.
	HTTPClient HTTPClient `koanf:"http_client"`
	// WebSocket holds the defaults of every rule's websocket block.
	WebSocket rules.WebSocket `koanf:"-"`

	// File is the path the configuration was read from ("" for none).
	File string `koanf:"-"`
	// Env is the environment the configuration was loaded with; a reload
	// of File applies the same one.
	Env []string `koanf:"-"`
	// doc is File's YAML tree, for the line of a key.
	doc *yaml.Node
	// Warnings lists keys that were ignored (unknown keys, Oathkeeper
	// features portcullis does not have).
	Warnings []string `koanf:"-"`
}

// Serve holds the listeners.
type Serve struct {
	Proxy      ProxyServe `koanf:"proxy"`
	API        APIServe   `koanf:"api"`
	Prometheus Prometheus `koanf:"prometheus"`
	// GRPC is the Envoy ext_authz (gRPC v3) listener; port -1 (the
	// default) turns it off.
	GRPC Listener `koanf:"grpc"`
}

// Listener is a host and port to listen on, with optional TLS.
type Listener struct {
	Host string    `koanf:"host"`
	Port int       `koanf:"port"`
	TLS  TLSConfig `koanf:"tls"`
}

// TLSConfig names a certificate and key; both empty means plain HTTP.
type TLSConfig struct {
	Cert KeyFile `koanf:"cert"`
	Key  KeyFile `koanf:"key"`
}

// KeyFile is a PEM file by path (Oathkeeper also accepts base64; portcullis
// reads paths).
type KeyFile struct {
	Path string `koanf:"path"`
}

// Enabled reports whether both a certificate and a key are configured.
func (t TLSConfig) Enabled() bool { return t.Cert.Path != "" && t.Key.Path != "" }

// Addr formats host:port.
func (l Listener) Addr() string { return fmt.Sprintf("%s:%d", l.Host, l.Port) }

// Admin is serve.api.admin.
type Admin struct {
	// Token is the bearer token admin requests must carry; empty with an
	// empty TokenFile turns the admin API off.
	Token string `koanf:"token"`
	// TokenFile is a file holding the token (surrounding white space is
	// ignored), for a token mounted as a secret.
	TokenFile string `koanf:"token_file"`
}

// MinAdminTokenLength is the shortest admin token accepted.
const MinAdminTokenLength = 16

// ResolveToken returns the admin token from token or token_file ("" when
// the admin API is off). The token itself never appears in an error.
func (a Admin) ResolveToken() (string, error) {
	tok := a.Token
	switch {
	case a.Token != "" && a.TokenFile != "":
		return "", errors.New("serve.api.admin: set token or token_file, not both")
	case a.TokenFile != "":
		b, err := os.ReadFile(a.TokenFile)
		if err != nil {
			return "", fmt.Errorf("serve.api.admin.token_file: %w", err)
		}
		tok = strings.TrimSpace(string(b))
		if tok == "" {
			return "", fmt.Errorf("serve.api.admin.token_file: %s is empty", a.TokenFile)
		}
	}
	if tok != "" && len(tok) < MinAdminTokenLength {
		return "", fmt.Errorf("serve.api.admin.token: must be at least %d characters", MinAdminTokenLength)
	}
	return tok, nil
}

// Revocation is the revocation block: how revocations are remembered and
// spread to the other replicas.
type Revocation struct {
	// TombstoneTTL is the longest a revoked session or subject is refused.
	TombstoneTTL time.Duration `koanf:"tombstone_ttl"`
	// MaxTombstones bounds the remembered revocations.
	MaxTombstones int `koanf:"max_tombstones"`
	// Redis is the fleet channel; an empty URL means a single replica.
	Redis RevocationRedis `koanf:"redis"`
	// BackchannelLogout is the OpenID Connect Back-Channel Logout
	// endpoint on the API listener; off unless path is set.
	BackchannelLogout BackchannelLogout `koanf:"backchannel_logout"`
}

// BackchannelLogout is revocation.backchannel_logout.
type BackchannelLogout struct {
	// Path is where the OP POSTs logout tokens, on the API listener.
	Path string `koanf:"path"`
	// Issuer is the OP's issuer (the token's iss).
	Issuer string `koanf:"issuer"`
	// Audience lists this deployment's client ids at the OP (the token's aud).
	Audience []string `koanf:"audience"`
	// JWKSURLs are the OP's key sets.
	JWKSURLs []string `koanf:"jwks_urls"`
	// MaxAge bounds how old a token's iat may be.
	MaxAge time.Duration `koanf:"max_age"`
}

// Validate checks that an enabled endpoint is fully configured.
func (b BackchannelLogout) Validate() error {
	if b.Path == "" {
		return nil
	}
	switch {
	case !strings.HasPrefix(b.Path, "/"):
		return fmt.Errorf("revocation.backchannel_logout.path: %q must start with /", b.Path)
	case strings.HasPrefix(b.Path, "/admin/") || strings.HasPrefix(b.Path, "/decisions") || strings.HasPrefix(b.Path, "/health/"):
		return fmt.Errorf("revocation.backchannel_logout.path: %q is taken by another endpoint", b.Path)
	case b.Issuer == "":
		return errors.New("revocation.backchannel_logout.issuer: required with path")
	case len(b.Audience) == 0:
		return errors.New("revocation.backchannel_logout.audience: required with path")
	case len(b.JWKSURLs) == 0:
		return errors.New("revocation.backchannel_logout.jwks_urls: required with path")
	}
	return nil
}

// RevocationRedis is revocation.redis.
type RevocationRedis struct {
	// URL is redis://[user:password@]host:port[/db] (rediss:// for TLS).
	URL string `koanf:"url"`
	// Stream is the Redis Stream's key.
	Stream string `koanf:"stream"`
}

// HTTPClient is http_client: the one client every handler calls other
// services with (session stores, introspection endpoints, key sets, policy
// documents, remote authorizers, the hydrator, back-channel logout key
// sets). Each handler still bounds its own calls (its timeout keys).
type HTTPClient struct {
	// CAFile is a PEM bundle trusted for https calls, in addition to the
	// system pool (an internal CA that signs the identity provider's
	// certificate).
	CAFile string `koanf:"ca_file"`
	// ConnectTimeout bounds opening a connection to a service.
	ConnectTimeout time.Duration `koanf:"connect_timeout"`
}

// ProxyServe is serve.proxy.
type ProxyServe struct {
	Listener `koanf:",squash"`
	Timeout  Timeouts `koanf:"timeout"`
	// TrustForwardedHeaders is Oathkeeper's key: the client's
	// X-Forwarded-For/-Host/-Proto come from a trusted load balancer and
	// are passed upstream (validated). Off, portcullis sends its own
	// values. X-Forwarded-Proto selects a rule's https:// form either way,
	// as in Oathkeeper.
	TrustForwardedHeaders bool `koanf:"trust_forwarded_headers"`
	// MatchForwardedHost (portcullis's own key) also lets a trusted
	// X-Forwarded-Host decide the host rules match; it needs
	// trust_forwarded_headers.
	MatchForwardedHost bool `koanf:"match_forwarded_host"`
	// UpstreamCAFile is a PEM bundle trusted for https/wss upstreams, in
	// addition to the system pool.
	UpstreamCAFile string `koanf:"upstream_ca_file"`
	// WebSocketRelay (portcullis's own key) is how tunnels wait for data:
	// "goroutines" (empty: the default), a goroutine per direction, or
	// "poll", parked on epoll while idle (Linux; elsewhere goroutines).
	WebSocketRelay string `koanf:"websocket_relay"`
	// WebSocketCloseLead (portcullis's own key) bounds how early a burst
	// of fixed deadlines (max lifetime, session expiry) shared by 256 or
	// more tunnels or streams may start closing, so that its last Close
	// lands on time rather than after it; 0 closes every channel at its
	// deadline, never before (docs/websockets.md, "Many tunnels at one
	// deadline").
	WebSocketCloseLead time.Duration `koanf:"websocket_close_lead"`
}

// Prometheus is serve.prometheus.
type Prometheus struct {
	Listener    `koanf:",squash"`
	MetricsPath string `koanf:"metrics_path"`
}

// APIServe is serve.api.
type APIServe struct {
	Listener `koanf:",squash"`
	// Timeout bounds the API's connections as serve.proxy.timeout does the
	// proxy's (same defaults): a slow body on /decisions or an idle
	// keep-alive cannot hold a connection open.
	Timeout APITimeouts `koanf:"timeout"`
	// Admin is the admin API (/admin/...), off unless a token is set.
	Admin Admin `koanf:"admin"`
}

// APITimeouts are serve.api.timeout.
type APITimeouts struct {
	Read       time.Duration `koanf:"read"`
	ReadHeader time.Duration `koanf:"read_header"`
	Write      time.Duration `koanf:"write"`
	Idle       time.Duration `koanf:"idle"`
}

// Timeouts are serve.proxy.timeout.
type Timeouts struct {
	Read       time.Duration `koanf:"read"`
	ReadHeader time.Duration `koanf:"read_header"`
	Write      time.Duration `koanf:"write"`
	Idle       time.Duration `koanf:"idle"`
	// Shutdown is the grace period for in-flight requests and tunnels.
	Shutdown time.Duration `koanf:"shutdown"`
	// Upstream bounds the wait for an upstream's response headers (and a
	// WebSocket upstream's handshake answer): past it the client gets 504.
	Upstream time.Duration `koanf:"upstream"`
}

// AccessRules is access_rules.
type AccessRules struct {
	Repositories     []string `koanf:"repositories"`
	MatchingStrategy string   `koanf:"matching_strategy"`
	// PollInterval is how often file repositories are re-read.
	PollInterval time.Duration `koanf:"poll_interval"`
	// HTTPPollInterval is how often http(s) repositories are fetched.
	HTTPPollInterval time.Duration `koanf:"http_poll_interval"`
}

// HandlerConfig is authenticators.<name> (and the like).
type HandlerConfig struct {
	Enabled bool           `koanf:"enabled"`
	Config  map[string]any `koanf:"config"`
}

// Raw returns the handler's global config as JSON.
func (h HandlerConfig) Raw() (json.RawMessage, error) {
	if h.Config == nil {
		return nil, nil
	}
	return json.Marshal(h.Config)
}

// Handlers returns the configuration's block of the kind's handlers
// (authenticators, ..., errors.handlers) by name.
func (c *Config) Handlers(k pipeline.Kind) map[string]HandlerConfig {
	switch k {
	case pipeline.KindAuthenticator:
		return c.Authenticators
	case pipeline.KindAuthorizer:
		return c.Authorizers
	case pipeline.KindMutator:
		return c.Mutators
	case pipeline.KindErrorHandler:
		return c.Errors.Handlers
	}
	return nil
}

// Errors is the errors block.
type Errors struct {
	Fallback []string                 `koanf:"fallback"`
	Handlers map[string]HandlerConfig `koanf:"handlers"`
}

// Log is the log block.
type Log struct {
	Level  string `koanf:"level"`
	Format string `koanf:"format"`
	// LeakSensitiveValues allows credentials in logs. Never in production.
	LeakSensitiveValues bool `koanf:"leak_sensitive_values"`
	// Buffer, when its Size is above zero, buffers log lines
	// (internal/logbuf): one write per Size bytes or Flush interval.
	Buffer LogBuffer `koanf:"buffer"`
}

// LogBuffer is log.buffer: size 0 (the default) writes each line at once.
type LogBuffer struct {
	Size  int           `koanf:"size"`  // bytes; 0: off
	Flush time.Duration `koanf:"flush"` // how long a line may wait
}

// MaxLogBuffer bounds log.buffer.size.
const MaxLogBuffer = 16 << 20

// Validate checks log.buffer's values; a bad one is a [*pipeline.KeyError]
// naming its key within the block.
func (b LogBuffer) Validate() error {
	switch {
	case b.Size < 0 || b.Size > MaxLogBuffer:
		return &pipeline.KeyError{Path: []string{"size"}, Err: fmt.Errorf("must be between 0 and %d bytes, got %d", MaxLogBuffer, b.Size)}
	case b.Size > 0 && b.Flush <= 0:
		return &pipeline.KeyError{Path: []string{"flush"}, Err: fmt.Errorf("must be a positive duration when log.buffer.size is set, got %v", b.Flush)}
	}
	return nil
}

// Tracing is the tracing block, in Oathkeeper's shape. Only the "otel"
// provider exists (OTLP over HTTP); any other provider leaves tracing off
// with a warning. The standard OTEL_* environment variables apply to what
// the file leaves unset (OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_TRACES_SAMPLER,
// OTEL_SERVICE_NAME, ...).
type Tracing struct {
	// Provider is "otel" to trace, "" (the default) for no tracing.
	Provider string `koanf:"provider"`
	// ServiceName is the service.name of the spans (default portcullis).
	ServiceName string           `koanf:"service_name"`
	Providers   TracingProviders `koanf:"providers"`
	// TrustIncoming continues the trace of a W3C traceparent (and
	// tracestate) the client sent. Off, every request starts a trace of
	// its own and the client's trace headers are replaced upstream. Turn it
	// on only behind a proxy that sets or vets these headers.
	TrustIncoming bool `koanf:"trust_incoming"`
}

// TracingProviders is tracing.providers.
type TracingProviders struct {
	OTLP OTLP `koanf:"otlp"`
}

// OTLP is tracing.providers.otlp: where the OTLP/HTTP exporter sends spans.
type OTLP struct {
	// ServerURL is host:port (or a URL) of the collector's OTLP/HTTP
	// receiver; "" leaves it to OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT, else
	// localhost:4318.
	ServerURL string `koanf:"server_url"`
	// Insecure sends spans over plain HTTP instead of HTTPS.
	Insecure bool `koanf:"insecure"`
	Sampling struct {
		// SamplingRatio is the share of new traces recorded, 0 to 1 (a
		// trusted parent's decision is kept); unset leaves it to
		// OTEL_TRACES_SAMPLER, else every trace is recorded.
		SamplingRatio *float64 `koanf:"sampling_ratio"`
	} `koanf:"sampling"`
}

// Defaults are the values used for keys the file and environment leave unset.
func Defaults() map[string]any {
	return map[string]any{
		"serve.proxy.host":                      "",
		"serve.proxy.port":                      4455,
		"serve.proxy.timeout.read":              "5s",
		"serve.proxy.timeout.read_header":       "5s",
		"serve.proxy.timeout.write":             "120s",
		"serve.proxy.timeout.idle":              "120s",
		"serve.proxy.timeout.shutdown":          "10s",
		"serve.proxy.timeout.upstream":          "60s",
		"serve.proxy.trust_forwarded_headers":   false,
		"serve.proxy.match_forwarded_host":      false,
		"serve.proxy.websocket_close_lead":      "100ms",
		"serve.api.host":                        "",
		"serve.api.port":                        4456,
		"serve.api.timeout.read":                "5s",
		"serve.api.timeout.read_header":         "5s",
		"serve.api.timeout.write":               "120s",
		"serve.api.timeout.idle":                "120s",
		"serve.prometheus.host":                 "",
		"serve.prometheus.port":                 9000,
		"serve.prometheus.metrics_path":         "/metrics",
		"access_rules.matching_strategy":        "regexp",
		"access_rules.poll_interval":            "1s",
		"access_rules.http_poll_interval":       "30s",
		"errors.fallback":                       []any{"json"},
		"errors.handlers.json.enabled":          true,
		"log.level":                             "info",
		"log.format":                            "text",
		"log.leak_sensitive_values":             false,
		"log.buffer.size":                       0,
		"log.buffer.flush":                      "1s",
		"revocation.tombstone_ttl":              "24h",
		"revocation.max_tombstones":             100000,
		"revocation.redis.stream":               "portcullis:revocations",
		"revocation.backchannel_logout.max_age": "5m",
		"http_client.connect_timeout":           "10s",
		"serve.grpc.host":                       "",
		"serve.grpc.port":                       -1,
		"tracing.provider":                      "",
		"tracing.service_name":                  "portcullis",
		"tracing.trust_incoming":                false,
		"tracing.providers.otlp.server_url":     "",
		"tracing.providers.otlp.insecure":       false,
	}
}

// knownLeaves are the fixed key paths of the schema (handler configs are
// free-form and checked by each handler when rules load).
var knownLeaves = func() map[string]bool {
	m := map[string]bool{}
	for k := range Defaults() {
		m[k] = true
	}
	for _, k := range []string{
		"access_rules.repositories",
		"serve.proxy.tls.cert.path", "serve.proxy.tls.key.path",
		"serve.api.tls.cert.path", "serve.api.tls.key.path",
		"serve.prometheus.tls.cert.path", "serve.prometheus.tls.key.path",
		"serve.grpc.tls.cert.path", "serve.grpc.tls.key.path",
		"tracing.providers.otlp.sampling.sampling_ratio",
		"serve.proxy.upstream_ca_file", "serve.proxy.websocket_relay",
		"serve.api.admin.token", "serve.api.admin.token_file",
		"revocation.redis.url",
		"http_client.ca_file",
		"revocation.backchannel_logout.path", "revocation.backchannel_logout.issuer",
		"revocation.backchannel_logout.audience", "revocation.backchannel_logout.jwks_urls",
		"websocket.unavailable_grace",
		"websocket.max_lifetime", "websocket.bind_to_session", "websocket.revalidate_every", "websocket.reauthorize",
		"websocket.tolerate_unavailable", "websocket.idle_timeout", "websocket.allowed_origins",
		"websocket.max_connections", "websocket.forward_cookies", "websocket.close_grace",
	} {
		m[k] = true
	}
	return m
}()

// Strategy returns the parsed matching strategy.
func (c *Config) Strategy() (rules.Strategy, error) {
	return rules.ParseStrategy(c.AccessRules.MatchingStrategy)
}

// WebSocketDefaults resolves the websocket block over the built-in defaults.
func (c *Config) WebSocketDefaults() (rules.WebSocketPolicy, error) {
	return c.WebSocket.Apply(rules.DefaultWebSocketPolicy())
}

// Position is "file:line" of the dotted key path in the configuration file
// (the deepest part of the path found), or the file alone when the key is
// not written in it (a default or an environment value).
func (c *Config) Position(path string) string {
	if c.File == "" {
		return "config"
	}
	if line := yamlpos.Line(c.doc, strings.Split(path, ".")...); line > 0 {
		return fmt.Sprintf("%s:%d", c.File, line)
	}
	return c.File
}
