package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Paths of the benchmark rules. Every rule matches any host, so the same
// rule answers the proxy and the decision API.
const (
	pathAnon       = "/anon/items/42"    // anonymous → allow → header
	pathSession    = "/session/items/42" // bearer_token (Kratos, cache on) → allow → header
	pathNoCache    = "/nocache/items/42" // bearer_token (Kratos, cache off) → allow → header
	pathWSEcho     = "/ws/echo"          // anonymous → allow → header, tunnelled
	pathWSSink     = "/ws/sink"
	pathWSSession  = "/wss/idle"   // bearer_token → allow → header, tunnel bound to the session
	pathWSLifetime = "/wsl/idle"   // anonymous → allow → header, tunnel with a max lifetime (figure 7)
	pathSSE        = "/sse/events" // anonymous → allow → header, an event stream held idle (figure 10)
)

// extras are what a portcullis variant adds to the benchmark
// configuration.
type extras struct {
	// logBuffer, when not empty, is the log.buffer block's flow mapping
	// ("{size: 65536, flush: 1s}").
	logBuffer string
	// otlp, when not empty, turns tracing on: every request sampled, spans
	// sent by OTLP/HTTP to this collector URL (…/v1/traces).
	otlp string
	// relay, when not empty, is serve.proxy.websocket_relay ("poll": the
	// readiness-driven relay of figures 4-6's poll rows).
	relay string
}

// writeConfig writes portcullis's benchmark configuration and rules into
// dir and returns the configuration's path. whoami is Kratos's
// /sessions/whoami ("" leaves the session rules out).
func writeConfig(dir, upstream, whoami, logLevel, logFormat, lifetime string, x extras) (string, error) {
	rules := benchRule("anon", "/anon", "{handler: anonymous}", upstream, "") +
		benchRule("ws", "/ws", "{handler: anonymous}", upstream, "") +
		benchRule("ws-lifetime", "/wsl", "{handler: anonymous}", upstream, "  websocket: {max_lifetime: "+lifetime+"}\n") +
		benchRule("sse", "/sse", "{handler: anonymous}", upstream, "")
	if whoami != "" {
		rules += benchRule("session", "/session", "{handler: bearer_token}", upstream, "") +
			benchRule("session-nocache", "/nocache", "{handler: bearer_token, config: {cache: {enabled: false}}}", upstream, "") +
			benchRule("ws-session", "/wss", "{handler: bearer_token}", upstream, "  websocket: {bind_to_session: true}\n")
	}
	rulesPath, err := writeFile(dir, "access-rules.yml", rules)
	if err != nil {
		return "", err
	}
	cfg := "# portcullis benchmark configuration (written by bench/).\n" +
		serverConfig([3]int{}, rulesPath, bearerBlock(whoami, ""), logLevel, logFormat)
	if x.relay != "" {
		// portcullis's own key, in the proxy listener's flow mapping
		// (Oathkeeper has no such key, so serverConfig leaves it out).
		cfg = strings.Replace(cfg, "  proxy: {", "  proxy: {websocket_relay: "+x.relay+", ", 1)
	}
	if x.logBuffer != "" {
		// The log block is the configuration's last (portcullis only:
		// Oathkeeper has no such key).
		cfg += "  buffer: " + x.logBuffer + "\n"
	}
	if x.otlp != "" {
		cfg += fmt.Sprintf(`tracing:
  provider: otel
  service_name: portcullis-bench
  providers:
    otlp:
      server_url: %q
      insecure: true
      sampling: {sampling_ratio: 1}
`, x.otlp)
	}
	return writeFile(dir, "portcullis.yml", cfg)
}

// benchRule is one rule of the benchmark's rules (portcullis's and
// Oathkeeper's alike): GET under prefix, authenticated by authn, allowed,
// the header mutator, proxied to upstream; extra adds keys (a websocket
// block).
func benchRule(id, prefix, authn, upstream, extra string) string {
	return fmt.Sprintf(`- id: %s
  match:
    url: "http://<[^/]+>%s/<.*>"
    methods: [GET]
  authenticators: [%s]
  authorizer: {handler: allow}
  mutators: [{handler: header}]
  upstream: {url: "%s"}
%s`, id, prefix, authn, upstream, extra)
}

// bearerBlock is the bearer_token authenticator against Kratos's whoami
// with extra config lines, or "" without a Kratos.
func bearerBlock(whoami, extra string) string {
	if whoami == "" {
		return ""
	}
	return fmt.Sprintf(`  bearer_token:
    enabled: true
    config:
      check_session_url: %q
%s      subject_from: identity.id
`, whoami, extra)
}

// writeFile writes content to dir/name and returns the path.
func writeFile(dir, name, content string) (string, error) {
	path := filepath.Join(dir, name)
	return path, os.WriteFile(path, []byte(content), 0o600)
}

// serverConfig is the configuration portcullis and Oathkeeper both run
// with (the same keys load in both): the listeners on loopback at ports
// (0 picks free ones), the rules file, the anonymous authenticator plus
// the bearer block when set, allow, the header mutator, and the log.
func serverConfig(ports [3]int, rulesPath, bearer, logLevel, logFormat string) string {
	return fmt.Sprintf(`serve:
  proxy: {host: 127.0.0.1, port: %d}
  api: {host: 127.0.0.1, port: %d}
  prometheus: {host: 127.0.0.1, port: %d}
access_rules:
  matching_strategy: regexp
  repositories: ["file://%s"]
errors:
  fallback: [json]
  handlers:
    json: {enabled: true}
authenticators:
  anonymous: {enabled: true}
%sauthorizers:
  allow: {enabled: true}
mutators:
  header:
    enabled: true
    config:
      headers:
        X-User: "{{ print .Subject }}"
log:
  level: %s
  format: %s
`, ports[0], ports[1], ports[2], rulesPath, bearer, logLevel, logFormat)
}

// benchLogBuffer is the log.buffer of figure 1's buffered-log row: nginx's
// usual 64k buffer, lines at most a second late.
const benchLogBuffer = "{size: 65536, flush: 1s}"
