package pipeline

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"reflect"
	"time"
)

// MergeConfig returns the rule's handler config merged over the global one:
// objects merge key by key (recursively), any other rule value replaces the
// global value. Either side may be empty or JSON null.
func MergeConfig(global, rule json.RawMessage) (json.RawMessage, error) {
	g, err := decodeAny(global)
	if err != nil {
		return nil, fmt.Errorf("global config: %w", err)
	}
	r, err := decodeAny(rule)
	if err != nil {
		return nil, fmt.Errorf("rule config: %w", err)
	}
	return json.Marshal(mergeValues(g, r))
}

func decodeAny(raw json.RawMessage) (any, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return map[string]any{}, nil
	}
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil, err
	}
	if v == nil {
		return map[string]any{}, nil
	}
	return v, nil
}

func mergeValues(base, over any) any {
	bm, ok1 := base.(map[string]any)
	om, ok2 := over.(map[string]any)
	if !ok1 || !ok2 {
		return over
	}
	out := make(map[string]any, len(bm)+len(om))
	for k, v := range bm {
		out[k] = v
	}
	for k, v := range om {
		if prev, ok := out[k]; ok {
			out[k] = mergeValues(prev, v)
		} else {
			out[k] = v
		}
	}
	return out
}

// Defaulter is implemented by config structs that set their defaults before
// the configuration is decoded onto them.
type Defaulter interface{ SetDefaults() }

// Validator is implemented by config structs that check themselves after
// decoding.
type Validator interface{ Validate() error }

// DecodeStrict decodes raw (JSON, possibly empty) into v: an unknown key is
// an [*UnknownKeyError] and a value that does not decode a [*KeyError], each
// naming the key's path from the top of raw (found with [KeyPath]). If v
// implements [Defaulter] its defaults are set first; if it implements
// [Validator] it is validated last.
func DecodeStrict(raw json.RawMessage, v any) error {
	if err := decodeOnto(raw, v); err != nil {
		return err
	}
	if val, ok := v.(Validator); ok {
		if err := val.Validate(); err != nil {
			return err
		}
	}
	return nil
}

// decodeOnto is [DecodeStrict] without the validation: a handler's global
// config may leave required keys to the rules ([GlobalConfig]).
func decodeOnto(raw json.RawMessage, v any) error {
	if d, ok := v.(Defaulter); ok {
		d.SetDefaults()
	}
	raw = bytes.TrimSpace(raw)
	if len(raw) > 0 && !bytes.Equal(raw, []byte("null")) {
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		if err := dec.Decode(v); err != nil {
			return keyed(raw, reflect.TypeOf(v), err)
		}
	}
	return nil
}

// Duration is a time.Duration that reads from JSON and YAML as a Go
// duration string ("5s", "1h30m") and writes back the same way.
type Duration time.Duration

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// String formats as time.Duration does.
func (d Duration) String() string { return time.Duration(d).String() }

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// UnmarshalJSON reads a duration string; a bare number is read as seconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		var n float64
		if err2 := json.Unmarshal(b, &n); err2 != nil {
			return fmt.Errorf("expected a duration such as \"5s\", got %s", b)
		}
		*d = Duration(n * float64(time.Second))
		return nil
	}
	return d.UnmarshalText([]byte(s))
}

// UnmarshalText reads a duration string.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("expected a duration such as \"5s\", got %q", b)
	}
	*d = Duration(v)
	return nil
}

// JSONCompatible turns a value decoded from YAML into one encoding/json can
// marshal: maps with non-string keys (map[any]any) become map[string]any,
// recursively. Maps and slices are rewritten in place.
func JSONCompatible(v any) any {
	switch t := v.(type) {
	case map[string]any:
		for k, x := range t {
			t[k] = JSONCompatible(x)
		}
		return t
	case map[any]any:
		m := make(map[string]any, len(t))
		for k, x := range t {
			m[fmt.Sprint(k)] = JSONCompatible(x)
		}
		return m
	case []any:
		for i, x := range t {
			t[i] = JSONCompatible(x)
		}
		return t
	default:
		return v
	}
}

// ConfigHash is the SHA-256 of a handler's effective configuration (the
// typed config after defaults and the rule's keys are merged), as JSON.
// A cache shared by several rules keys its answers with it, so two rules
// whose configurations differ in anything never share an answer. v must
// marshal deterministically (structs, and maps, which encoding/json sorts).
func ConfigHash(v any) ([32]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return [32]byte{}, fmt.Errorf("hashing configuration: %w", err)
	}
	return sha256.Sum256(b), nil
}
