package schemas_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/portcullis-proxy/portcullis/config"
	"github.com/portcullis-proxy/portcullis/internal/registry"
	"github.com/portcullis-proxy/portcullis/pipeline"
)

var update = flag.Bool("update", false, "rewrite the schemas' handler lists from the catalog")

// The handler lists of both schemas are derived from the catalog
// (internal/registry): the configuration's handler blocks
// (authenticators.<name>: enabled, config), the rules' handler name enums
// and the per-handler config schemas they select. What a handler's config
// means is written once, in its $defs entry (checked against its config
// struct by TestSchemasCoverEveryHandler); its one-line summary is the
// first part of that entry's description. `go generate ./schemas` (this
// test with -update) writes the derived parts; a new handler gets a $defs
// entry to fill in.
func TestSchemasFollowTheCatalog(t *testing.T) {
	cfg := readOrdered(t, "config.schema.json")
	deriveConfigSchema(t, cfg)
	rules := readOrdered(t, "rules.schema.json")
	deriveRulesSchema(t, rules)
	for name, doc := range map[string]*object{"config.schema.json": cfg, "rules.schema.json": rules} {
		want := encodeOrdered(t, doc)
		got, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Equal(got, want) {
			continue
		}
		if *update {
			if err := os.WriteFile(name, want, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		t.Errorf("%s does not list the catalog's handlers as internal/registry does: run go generate ./schemas", name)
	}
}

// Oathkeeper's wording of the merge, the end of every handler's $defs
// description.
const mergeNote = " Rule configs are merged over the global one (the rule's keys win); unknown keys are errors."

// toBeDescribed ends the summary of a $defs entry made for a new handler.
const toBeDescribed = " (to be described)."

// summary is a handler's one-line description: its $defs description
// without the merge note. A handler without a $defs entry gets one, to be
// written.
func summary(t *testing.T, defs *object, h pipeline.Handler) string {
	key := h.Kind().SchemaName() + "." + h.Name()
	def, _ := defs.get(key).(*object)
	if def == nil {
		def = &object{}
		def.set("type", "object")
		def.set("title", "")
		def.set("description", "")
		def.set("properties", &object{})
		def.set("additionalProperties", false)
		defs.set(key, def)
	}
	def.set("title", h.Name()+" "+h.Kind().String())
	desc, _ := def.get("description").(string)
	s := strings.TrimSuffix(desc, mergeNote)
	if s == "" {
		s = "The " + h.Name() + " " + h.Kind().String() + toBeDescribed
	}
	if strings.HasSuffix(s, toBeDescribed) {
		t.Errorf("config.schema.json: $defs.%s: describe the handler and its keys", key)
	}
	def.set("description", s+mergeNote)
	return s
}

// hasConfig reports whether a handler's config struct has keys.
func hasConfig(h pipeline.Handler) bool {
	for _, f := range reflect.VisibleFields(h.Config()) {
		if f.IsExported() && f.Tag.Get("json") != "-" {
			return true
		}
	}
	return false
}

func noConfig(keys ...string) *object {
	o := &object{}
	for _, k := range keys {
		switch k {
		case "type":
			o.set("type", []any{"object", "null"})
		case "description":
			o.set("description", "No configuration.")
		case "additionalProperties":
			o.set("additionalProperties", false)
		}
	}
	return o
}

// deriveConfigSchema writes each kind's handler blocks, in catalog order,
// and each handler's $defs title and summary.
func deriveConfigSchema(t *testing.T, cfg *object) {
	t.Helper()
	defs := cfg.get("$defs").(*object)
	known := map[string]bool{}
	blocks := map[pipeline.Kind]*object{}
	cat := registry.NewCatalog()
	for _, h := range cat.Handlers() {
		k := h.Kind()
		if blocks[k] == nil {
			blocks[k] = &object{}
		}
		key := k.SchemaName() + "." + h.Name()
		known[key] = true
		desc := summary(t, defs, h)
		enabled := &object{}
		enabled.set("type", "boolean")
		enabled.set("description", "Enable the handler; rules may use only enabled handlers.")
		enabled.set("default", config.Defaults()[k.ConfigKey()+"."+h.Name()+".enabled"] == true)
		var c *object
		if hasConfig(h) {
			c = &object{}
			c.set("$ref", "#/$defs/"+key)
			c.set("description", "Global config of the handler; a rule's config is merged over it.")
		} else {
			c = noConfig("type", "description", "additionalProperties")
		}
		props := &object{}
		props.set("enabled", enabled)
		props.set("config", c)
		block := &object{}
		block.set("type", "object")
		block.set("description", desc)
		block.set("properties", props)
		block.set("additionalProperties", false)
		blocks[k].set(h.Name(), block)
	}
	for _, k := range pipeline.Kinds() {
		node := cfg
		for _, part := range strings.Split(k.ConfigKey(), ".") {
			node = node.get("properties").(*object).get(part).(*object)
		}
		node.set("properties", blocks[k])
	}
	for _, key := range append([]string(nil), defs.keys...) {
		prefix, _, ok := strings.Cut(key, ".")
		if !ok || known[key] {
			continue
		}
		for _, k := range pipeline.Kinds() {
			if prefix == k.SchemaName() {
				defs.remove(key) // a handler no longer registered
			}
		}
	}
}

// deriveRulesSchema writes each rule key's handler enum and the config
// schema each name selects.
func deriveRulesSchema(t *testing.T, rules *object) {
	t.Helper()
	cat := registry.NewCatalog()
	props := rules.get("items").(*object).get("properties").(*object)
	for _, k := range pipeline.Kinds() {
		entry := props.get(k.RuleKey()).(*object)
		if items, ok := entry.get("items").(*object); ok {
			entry = items
		}
		var enum, allOf []any
		for _, h := range cat.Handlers() {
			if h.Kind() != k {
				continue
			}
			enum = append(enum, h.Name())
			var c *object
			if hasConfig(h) {
				c = &object{}
				c.set("$ref", "config.schema.json#/$defs/"+k.SchemaName()+"."+h.Name())
			} else {
				c = noConfig("type", "additionalProperties", "description")
			}
			name := &object{}
			name.set("const", h.Name())
			ifProps := &object{}
			ifProps.set("handler", name)
			cond := &object{}
			cond.set("properties", ifProps)
			cond.set("required", []any{"handler"})
			thenProps := &object{}
			thenProps.set("config", c)
			then := &object{}
			then.set("properties", thenProps)
			branch := &object{}
			branch.set("if", cond)
			branch.set("then", then)
			allOf = append(allOf, branch)
		}
		entry.get("properties").(*object).get("handler").(*object).set("enum", enum)
		entry.set("allOf", allOf)
	}
}

// object is a JSON object that keeps its keys in order, so the schemas are
// rewritten without reordering what is written by hand.
type object struct {
	keys []string
	vals map[string]any
}

func (o *object) get(k string) any { return o.vals[k] }

func (o *object) set(k string, v any) {
	if o.vals == nil {
		o.vals = map[string]any{}
	}
	if _, ok := o.vals[k]; !ok {
		o.keys = append(o.keys, k)
	}
	o.vals[k] = v
}

func (o *object) remove(k string) {
	delete(o.vals, k)
	for i, x := range o.keys {
		if x == k {
			o.keys = append(o.keys[:i], o.keys[i+1:]...)
			return
		}
	}
}

func readOrdered(t *testing.T, name string) *object {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	v, err := decodeValue(dec)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return v.(*object)
}

func decodeValue(dec *json.Decoder) (any, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch tok {
	case json.Delim('{'):
		o := &object{}
		for dec.More() {
			k, err := dec.Token()
			if err != nil {
				return nil, err
			}
			v, err := decodeValue(dec)
			if err != nil {
				return nil, err
			}
			o.set(k.(string), v)
		}
		_, err := dec.Token()
		return o, err
	case json.Delim('['):
		list := []any{}
		for dec.More() {
			v, err := decodeValue(dec)
			if err != nil {
				return nil, err
			}
			list = append(list, v)
		}
		_, err := dec.Token()
		return list, err
	}
	return tok, nil
}

// encodeOrdered writes v as the schema files are written: two-space
// indentation, HTML characters unescaped, a final newline.
func encodeOrdered(t *testing.T, v any) []byte {
	t.Helper()
	var compact bytes.Buffer
	if err := writeCompact(&compact, v); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := json.Indent(&out, compact.Bytes(), "", "  "); err != nil {
		t.Fatal(err)
	}
	out.WriteByte('\n')
	return out.Bytes()
}

func writeCompact(b *bytes.Buffer, v any) error {
	switch t := v.(type) {
	case *object:
		b.WriteByte('{')
		for i, k := range t.keys {
			if i > 0 {
				b.WriteByte(',')
			}
			if err := writeCompact(b, k); err != nil {
				return err
			}
			b.WriteByte(':')
			if err := writeCompact(b, t.vals[k]); err != nil {
				return err
			}
		}
		b.WriteByte('}')
	case []any:
		b.WriteByte('[')
		for i, x := range t {
			if i > 0 {
				b.WriteByte(',')
			}
			if err := writeCompact(b, x); err != nil {
				return err
			}
		}
		b.WriteByte(']')
	case json.Number:
		b.WriteString(t.String())
	default:
		enc := json.NewEncoder(b)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(t); err != nil {
			return fmt.Errorf("encoding %v: %w", t, err)
		}
		b.Truncate(b.Len() - 1) // Encode's newline
	}
	return nil
}
