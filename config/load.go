package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strings"

	"github.com/go-viper/mapstructure/v2"
	kjson "github.com/knadh/koanf/parsers/json"
	kyaml "github.com/knadh/koanf/parsers/yaml"
	"github.com/knadh/koanf/providers/confmap"
	"github.com/knadh/koanf/providers/rawbytes"
	"github.com/knadh/koanf/v2"
	"gopkg.in/yaml.v3"

	"github.com/portcullis-proxy/portcullis/internal/docsyntax"
	"github.com/portcullis-proxy/portcullis/pipeline"
)

// listKeys are read from a comma-separated environment value when the
// value is not a YAML/JSON list.
var listKeys = map[string]bool{
	"access_rules.repositories":               true,
	"errors.fallback":                         true,
	"websocket.allowed_origins":               true,
	"revocation.backchannel_logout.audience":  true,
	"revocation.backchannel_logout.jwks_urls": true,
}

// Load reads the file at path (YAML, or JSON for a .json name; "" for none),
// applies defaults and the environment env (os.Environ() form) and decodes
// the result. handlers maps each handler kind's block
// ([pipeline.Kind.ConfigKey]: "authenticators", ...) to the names
// portcullis knows, so environment variables can address their keys.
// A wrong type is a [*KeyError] naming the key (and its line in the file);
// unknown keys are collected in Config.Warnings.
func Load(path string, env []string, handlers map[string][]string) (*Config, error) {
	var data []byte
	if path != "" {
		var err error
		if data, err = os.ReadFile(path); err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
	}
	return LoadData(path, data, env, handlers)
}

// LoadData is [Load] of data, the content of the file at path, already
// read: a reload decodes exactly the bytes it checked were stable. A value
// that does not decode or validate is a [*KeyError] (several are joined,
// one per line).
func LoadData(path string, data []byte, env []string, handlers map[string][]string) (*Config, error) {
	k := koanf.New(".")
	if err := k.Load(confmap.Provider(Defaults(), "."), nil); err != nil {
		return nil, err
	}
	var doc *yaml.Node
	if path != "" {
		var err error
		if doc, err = docsyntax.Parse(path, data); err != nil {
			return nil, err
		}
		var parser koanf.Parser = kyaml.Parser()
		if docsyntax.IsJSON(path) {
			parser = kjson.Parser()
		}
		if len(bytes.TrimSpace(data)) > 0 {
			if err := k.Load(rawbytes.Provider(data), parser); err != nil {
				return nil, fmt.Errorf("%s: %w", path, err)
			}
		}
	}
	overrides := envOverrides(env, k.Keys(), handlers)
	if len(overrides) > 0 {
		if err := k.Load(confmap.Provider(overrides, "."), nil); err != nil {
			return nil, err
		}
	}
	at := locator{file: path, doc: doc, fromEnv: overrides}

	c := &Config{File: path, Env: env, doc: doc}
	dc := &mapstructure.DecoderConfig{
		Result:  c,
		TagName: "koanf",
		DecodeHook: mapstructure.ComposeDecodeHookFunc(
			mapstructure.StringToTimeDurationHookFunc(),
			mapstructure.TextUnmarshallerHookFunc(),
		),
	}
	if err := k.UnmarshalWithConf("", c, koanf.UnmarshalConf{Tag: "koanf", DecoderConfig: dc}); err != nil {
		return nil, at.decoding(err)
	}
	if ws := k.Get("websocket"); ws != nil {
		raw, err := json.Marshal(ws)
		if err != nil {
			return nil, at.block([]string{"websocket"}, err)
		}
		if err := pipeline.DecodeStrict(raw, &c.WebSocket); err != nil {
			return nil, at.block([]string{"websocket"}, err)
		}
	}
	if _, err := c.Strategy(); err != nil {
		return nil, at.keyError([]string{"access_rules", "matching_strategy"}, err)
	}
	if _, err := c.WebSocketDefaults(); err != nil {
		return nil, at.block([]string{"websocket"}, err)
	}
	switch c.Serve.Proxy.WebSocketRelay {
	case "", "goroutines", "poll":
	default:
		return nil, at.keyError([]string{"serve", "proxy", "websocket_relay"}, fmt.Errorf("must be goroutines or poll, got %q", c.Serve.Proxy.WebSocketRelay))
	}
	if c.Serve.Proxy.WebSocketCloseLead < 0 {
		return nil, at.keyError([]string{"serve", "proxy", "websocket_close_lead"}, fmt.Errorf("must not be negative, got %s", c.Serve.Proxy.WebSocketCloseLead))
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		return nil, at.keyError([]string{"log", "format"}, fmt.Errorf("must be text or json, got %q", c.Log.Format))
	}
	if err := c.Log.Buffer.Validate(); err != nil {
		return nil, at.block([]string{"log", "buffer"}, err)
	}
	if r := c.Tracing.Providers.OTLP.Sampling.SamplingRatio; r != nil && (*r < 0 || *r > 1) {
		return nil, at.keyError([]string{"tracing", "providers", "otlp", "sampling", "sampling_ratio"}, fmt.Errorf("must be between 0 and 1, got %v", *r))
	}
	c.Warnings = unknownKeys(k.Keys())
	switch c.Tracing.Provider {
	case "", "otel":
	default:
		c.Warnings = append(c.Warnings, fmt.Sprintf("tracing.provider %q is not supported (only otel, OTLP over HTTP): tracing is off", c.Tracing.Provider))
		c.Tracing.Provider = ""
	}
	return c, nil
}

// handlerKey matches the keys of a handler block of any kind
// (authenticators.jwt.enabled, errors.handlers.json.config.verbose).
var handlerKey = func() *regexp.Regexp {
	var blocks []string
	for _, k := range pipeline.Kinds() {
		blocks = append(blocks, regexp.QuoteMeta(k.ConfigKey()))
	}
	return regexp.MustCompile(`^(` + strings.Join(blocks, "|") + `)\.[^.]+\.(enabled|config(\..*)?)$`)
}()

func unknownKeys(keys []string) []string {
	var out []string
	for _, key := range keys {
		if knownLeaves[key] || handlerKey.MatchString(key) {
			continue
		}
		out = append(out, fmt.Sprintf("unknown configuration key %q is ignored", key))
	}
	sort.Strings(out)
	return out
}

func envName(path string) string {
	return strings.ToUpper(strings.NewReplacer(".", "_", "-", "_").Replace(path))
}

// envOverrides maps environment variables to key paths: the known keys,
// the keys present in the file, handler enabled flags, and the config keys
// of known handlers (AUTHENTICATORS_COOKIE_SESSION_CONFIG_CHECK_SESSION_URL).
func envOverrides(env []string, present []string, handlers map[string][]string) map[string]any {
	byEnv := map[string]string{}
	for k := range knownLeaves {
		byEnv[envName(k)] = k
	}
	for _, k := range present {
		byEnv[envName(k)] = k
	}
	type prefix struct{ env, path string }
	var prefixes []prefix
	for _, kind := range pipeline.Kinds() {
		for _, n := range handlers[kind.ConfigKey()] {
			base := kind.ConfigKey() + "." + n
			byEnv[envName(base+".enabled")] = base + ".enabled"
			prefixes = append(prefixes, prefix{env: envName(base + ".config."), path: base + ".config."})
		}
	}
	out := map[string]any{}
	for _, kv := range env {
		name, val, ok := strings.Cut(kv, "=")
		if !ok {
			continue
		}
		path, found := byEnv[name]
		if !found {
			for _, p := range prefixes {
				if strings.HasPrefix(name, p.env) && len(name) > len(p.env) {
					path, found = p.path+strings.ToLower(name[len(p.env):]), true
					break
				}
			}
		}
		if !found {
			continue
		}
		out[path] = envValue(path, val)
	}
	return out
}

// envValue reads an environment value as YAML (so numbers, booleans, JSON
// lists and objects keep their types), falling back to the raw string.
func envValue(path, val string) any {
	var v any
	if err := yaml.Unmarshal([]byte(val), &v); err != nil || v == nil {
		v = val
	}
	if s, ok := v.(string); ok && listKeys[path] {
		var list []any
		for _, part := range strings.Split(s, ",") {
			if part = strings.TrimSpace(part); part != "" {
				list = append(list, part)
			}
		}
		return list
	}
	if _, ok := v.(map[any]any); ok {
		return val // not a configuration block: keys that are not strings
	}
	return v
}
