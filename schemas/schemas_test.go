package schemas_test

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-proxy/portcullis/config"
	"github.com/portcullis-proxy/portcullis/internal/registry"
	"github.com/portcullis-proxy/portcullis/pipeline"
	"github.com/portcullis-proxy/portcullis/rules"
	"github.com/portcullis-proxy/portcullis/schemas"
)

// root is the repository root, seen from this package.
const root = ".."

// TestShippedFilesConform checks every example and test fixture of the
// two formats against the schemas, including the quickstart and the
// integrations when they are present.
func TestShippedFilesConform(t *testing.T) {
	sc := checker(t)
	glob := func(patterns ...string) []string {
		var out []string
		for _, p := range patterns {
			m, err := filepath.Glob(filepath.Join(root, p))
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, m...)
		}
		return out
	}
	ruleFiles := glob("contrib/*/access-rules*.yml", "contrib/*/access-rules*.yaml", "contrib/*/access-rules*.json",
		"contrib/*/rules/*.yml", "rules/testdata/*.yaml", "rules/testdata/*.json")
	configFiles := glob("contrib/*/oathkeeper.yml", "contrib/*/portcullis.yml", "contrib/*/config.yml", "config/testdata/*.yml")
	if len(ruleFiles) < 3 || len(configFiles) < 2 {
		t.Fatalf("found too few files: rules %v, config %v", ruleFiles, configFiles)
	}
	for _, format := range []struct {
		schema string
		files  []string
		check  func(file string, data []byte) []error
	}{{"rules", ruleFiles, sc.CheckRules}, {"config", configFiles, sc.CheckConfig}} {
		for _, f := range format.files {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range format.check(f, data) {
				t.Errorf("%s schema: %v", format.schema, e)
			}
		}
	}
}

func TestViolationsHaveLines(t *testing.T) {
	sc := checker(t)
	const doc = `- id: a
  match: {url: "http://x/<.*>", methods: [GET, get]}
  authenticators:
    - handler: anonymous
      config:
        subjekt: x
    - handler: nope
  authorizer: {handler: allow, config: {x: 1}}
  mutators:
    - handler: header
      config:
        headers: {X-User: 1}
  upstream: {url: "http://x", strip: /a}
  websocket: {max_lifetime: 1hour, idle_timeout: 30}
- match: {url: "x"}
`
	want := []string{
		`r.yml:2: rule "a": match.methods[1]: 'get' does not match pattern`,
		`r.yml:6: rule "a": authenticators[0].config: unknown key "subjekt"`,
		`r.yml:7: rule "a": authenticators[1]: unknown authenticator "nope" (known: [anonymous bearer_token`,
		`r.yml:8: rule "a": authorizer.config: unknown key "x"`,
		`r.yml:12: rule "a": mutators[0].config.headers.X-User: got number, want string`,
		`r.yml:13: rule "a": upstream: unknown key "strip"`,
		`r.yml:14: rule "a": websocket.max_lifetime: "1hour" is not a duration such as "30s" or "1h30m"`,
		`r.yml:15: rule [1]: missing properties 'id', 'authenticators', 'authorizer', 'mutators'`,
		`r.yml:15: rule [1]: match: missing property 'methods'`,
	}
	wantPrefixes(t, "rules", sc.CheckRules("r.yml", []byte(doc)), want)

	cfg := "serve:\n  proxy:\n    port: \"x\"\n    timeout: {read: 5}\nauthenticators:\n  anonymous:\n    enabled: true\n    config: {subject: 1}\n  keto: {enabled: false}\nlog: {level: loud}\n"
	wantCfg := []string{
		`c.yml:3: serve.proxy.port: got string, want integer`,
		`c.yml:4: serve.proxy.timeout.read: got number, want string`,
		`c.yml:8: authenticators.anonymous.config.subject: got number, want string`,
		`c.yml:9: authenticators: unknown key "keto"`,
		`c.yml:10: log.level: value must be one of`,
	}
	wantPrefixes(t, "config", sc.CheckConfig("c.yml", []byte(cfg)), wantCfg)
	// Empty documents and JSON conform; broken YAML is one error.
	for _, ok := range []string{"", "[]", `[{"id":"x","match":{"url":"http://x/","methods":["GET"]},"authenticators":[{"handler":"noop"}],"authorizer":{"handler":"allow"},"mutators":[{"handler":"noop"}]}]`} {
		if errs := sc.CheckRules("r.json", []byte(ok)); errs != nil {
			t.Errorf("CheckRules(%q) = %v", ok, errs)
		}
	}
	if errs := sc.CheckRules("r.yml", []byte("- id: [")); len(errs) != 1 || !strings.Contains(errs[0].Error(), "r.yml:1:7: syntax error: ") {
		t.Errorf("broken YAML: %v", errs)
	}
}

// wantPrefixes requires got to be as many errors as want, in order, each
// starting with its counterpart in want; schema names the checked format
// in the failures.
func wantPrefixes(t *testing.T, schema string, got []error, want []string) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: got %d errors, want %d:\n%s", schema, len(got), len(want), joinErrs(got))
	}
	for i := 0; i < len(got) && i < len(want); i++ {
		if !strings.HasPrefix(got[i].Error(), want[i]) {
			t.Errorf("%s error %d = %q, want prefix %q", schema, i, got[i], want[i])
		}
	}
}

func joinErrs(errs []error) string {
	var b strings.Builder
	for _, e := range errs {
		b.WriteString(e.Error() + "\n")
	}
	return b.String()
}

// TestSchemasCoverEveryHandler checks that the schemas know every
// registered handler (in the configuration's blocks and in the rules'
// handler lists) and describe exactly the keys its config struct decodes,
// with the defaults its SetDefaults sets; an error handler's config also
// has the `when` list the rule compiler reads.
func TestSchemasCoverEveryHandler(t *testing.T) {
	cfg, rs := load(t, "config.schema.json"), load(t, "rules.schema.json")
	defs := cfg["$defs"].(map[string]any)
	cat := registry.NewCatalog()
	ruleProps := rs["items"].(map[string]any)["properties"].(map[string]any)
	for _, k := range pipeline.Kinds() {
		enum := handlerEnum(ruleProps[k.RuleKey()].(map[string]any))
		for name := range enum {
			if !cat.Known(k, name) {
				t.Errorf("rules.schema.json: %s handler enum names %q, which is not registered", k.RuleKey(), name)
			}
		}
	}
	for _, h := range cat.Handlers() {
		k := h.Kind()
		if _, ok := walk(t, cfg, k.ConfigKey())["properties"].(map[string]any)[h.Name()]; !ok {
			t.Errorf("config.schema.json: %s has no block for registered handler %q", k.ConfigKey(), h.Name())
		}
		if !handlerEnum(ruleProps[k.RuleKey()].(map[string]any))[h.Name()] {
			t.Errorf("rules.schema.json: %s handler enum lacks registered handler %q", k.RuleKey(), h.Name())
		}
		key := k.SchemaName() + "." + h.Name()
		def, ok := defs[key].(map[string]any)
		if !ok {
			t.Errorf("config.schema.json: no $defs[%q]", key)
			continue
		}
		if k == pipeline.KindErrorHandler {
			def = withoutWhen(t, key, def)
		}
		v := reflect.New(h.Config())
		if d, ok := v.Interface().(pipeline.Defaulter); ok {
			d.SetDefaults()
		}
		compareObject(t, defs, "$defs."+key, v.Elem(), def)
	}
}

// withoutWhen checks that an error handler's definition has the `when`
// list ($defs/when) and returns it without that key, which no config
// struct decodes.
func withoutWhen(t *testing.T, key string, def map[string]any) map[string]any {
	t.Helper()
	props, _ := def["properties"].(map[string]any)
	when, _ := props[pipeline.WhenKey].(map[string]any)
	if ref, _ := when["$ref"].(string); ref != "#/$defs/when" {
		t.Errorf("$defs.%s: %q is %v, want a $ref to #/$defs/when", key, pipeline.WhenKey, when)
	}
	out := maps.Clone(def)
	out["properties"] = maps.Clone(props)
	delete(out["properties"].(map[string]any), pipeline.WhenKey)
	return out
}

// TestRulesSchemaCoversTheRuleType compares the rule's keys with
// rules.Rule and the websocket block with rules.WebSocket and the built-in
// policy defaults.
func TestRulesSchemaCoversTheRuleType(t *testing.T) {
	cfg, rs := load(t, "config.schema.json"), load(t, "rules.schema.json")
	defs := cfg["$defs"].(map[string]any)
	rule := rs["items"].(map[string]any)
	// Handler entries are checked by TestSchemasCoverEveryHandler; compare
	// their {handler, config} shape here by name only.
	compareKeys(t, "rule", jsonFields(reflect.TypeOf(rules.Rule{})), rule)
	for _, sub := range []struct {
		key string
		typ reflect.Type
	}{{"match", reflect.TypeOf(rules.Match{})}, {"upstream", reflect.TypeOf(rules.Upstream{})}} {
		compareObject(t, defs, "rule."+sub.key, reflect.New(sub.typ).Elem(), rule["properties"].(map[string]any)[sub.key].(map[string]any))
	}
	ws := defs["websocket"].(map[string]any)
	compareKeys(t, "$defs.websocket", jsonFields(reflect.TypeOf(rules.WebSocket{})), ws)
	p := reflect.ValueOf(rules.DefaultWebSocketPolicy())
	for name, prop := range ws["properties"].(map[string]any) {
		f := p.FieldByName(camel(name))
		if !f.IsValid() {
			t.Errorf("websocket.%s: no field %s in WebSocketPolicy", name, camel(name))
			continue
		}
		checkDefault(t, "websocket."+name, f, prop.(map[string]any))
	}
}

// TestConfigSchemaCoversTheConfigType compares the configuration's keys
// with config.Config (koanf tags) and their defaults with config.Defaults.
func TestConfigSchemaCoversTheConfigType(t *testing.T) {
	cfg := load(t, "config.schema.json")
	defs := cfg["$defs"].(map[string]any)
	var walkType func(prefix string, typ reflect.Type, schema map[string]any)
	walkType = func(prefix string, typ reflect.Type, schema map[string]any) {
		schema = resolve(t, defs, schema)
		props, _ := schema["properties"].(map[string]any)
		fields := koanfFields(typ)
		for name, ft := range fields {
			key := strings.TrimPrefix(prefix+"."+name, ".")
			prop, ok := props[name].(map[string]any)
			if !ok {
				t.Errorf("config.schema.json: no property %q", key)
				continue
			}
			if ft.Kind() == reflect.Struct && ft != reflect.TypeOf(time.Duration(0)) {
				walkType(key, ft, prop)
			}
		}
		for name, prop := range props {
			if _, ok := fields[name]; ok || ignored(prop) {
				continue
			}
			key := strings.TrimPrefix(prefix+"."+name, ".")
			if key == "websocket" {
				continue // decoded separately into rules.WebSocket
			}
			t.Errorf("config.schema.json: property %q is not a key of config.Config", key)
		}
	}
	walkType("", reflect.TypeOf(config.Config{}), cfg)
	for key, want := range config.Defaults() {
		if strings.Contains(key, ".handlers.") {
			continue // errors.handlers.json.enabled: checked below
		}
		prop := walk(t, cfg, key)
		got, ok := prop["default"]
		if !ok {
			t.Errorf("config.schema.json: %s has no default (the loader's is %v)", key, want)
			continue
		}
		if fmt.Sprint(normalizeDefault(got)) != fmt.Sprint(normalizeDefault(want)) {
			t.Errorf("config.schema.json: %s default = %v, the loader's is %v", key, got, want)
		}
	}
	if d := walk(t, cfg, "errors.handlers.json.enabled")["default"]; d != true {
		t.Errorf("errors.handlers.json.enabled default = %v, want true", d)
	}
}

func normalizeDefault(v any) any {
	if l, ok := v.([]any); ok {
		s := make([]string, len(l))
		for i, x := range l {
			s[i] = fmt.Sprint(x)
		}
		return strings.Join(s, ",")
	}
	if f, ok := v.(float64); ok && f == float64(int(f)) {
		return int(f)
	}
	return v
}

// compareObject checks that schema (an object schema, possibly a $ref)
// has exactly the JSON keys of v's type, with matching types and with
// v's values as defaults.
func compareObject(t *testing.T, defs map[string]any, where string, v reflect.Value, schema map[string]any) {
	t.Helper()
	schema = resolve(t, defs, schema)
	fields := jsonFields(v.Type())
	compareKeys(t, where, fields, schema)
	props, _ := schema["properties"].(map[string]any)
	for name, f := range fields {
		prop, ok := props[name].(map[string]any)
		if !ok {
			continue
		}
		fv := v.FieldByIndex(f.Index)
		checkType(t, defs, where+"."+name, fv, prop)
	}
}

func compareKeys(t *testing.T, where string, fields map[string]reflect.StructField, schema map[string]any) {
	t.Helper()
	props, _ := schema["properties"].(map[string]any)
	var missing, extra []string
	for name := range fields {
		if _, ok := props[name]; !ok {
			missing = append(missing, name)
		}
	}
	for name := range props {
		if _, ok := fields[name]; !ok {
			extra = append(extra, name)
		}
	}
	sort.Strings(missing)
	sort.Strings(extra)
	if len(missing) > 0 {
		t.Errorf("%s: the schema lacks keys %v that the Go type decodes", where, missing)
	}
	if len(extra) > 0 {
		t.Errorf("%s: the schema has keys %v that the Go type does not decode", where, extra)
	}
	if ap, ok := schema["additionalProperties"]; !ok || ap != false {
		t.Errorf("%s: additionalProperties must be false (configs are decoded strictly)", where)
	}
}

var durationType = reflect.TypeOf(pipeline.Duration(0))

// checkType compares a field's Go type with its schema and its value
// (after SetDefaults) with the schema's default.
func checkType(t *testing.T, defs map[string]any, where string, fv reflect.Value, prop map[string]any) {
	t.Helper()
	ref, _ := prop["$ref"].(string)
	resolved := resolve(t, defs, prop)
	typ := fv.Type()
	if typ.Kind() == reflect.Pointer {
		typ = typ.Elem()
		if fv.IsNil() {
			fv = reflect.New(typ)
			if d, ok := fv.Interface().(pipeline.Defaulter); ok {
				d.SetDefaults()
			}
		}
		fv = fv.Elem()
	}
	want := ""
	switch {
	case typ == durationType:
		if !strings.HasSuffix(ref, "/duration") {
			t.Errorf("%s: a duration, want $ref #/$defs/duration, got %v", where, prop)
		}
	case typ.Kind() == reflect.Bool:
		want = "boolean"
	case typ.Kind() == reflect.String:
		want = "string"
	case typ.Kind() >= reflect.Int && typ.Kind() <= reflect.Uint64:
		want = "integer"
	case typ.Kind() == reflect.Slice:
		want = "array"
		if typ.Elem().Kind() == reflect.Struct {
			items, _ := resolved["items"].(map[string]any)
			compareObject(t, defs, where+"[]", reflect.New(typ.Elem()).Elem(), items)
		}
	case typ.Kind() == reflect.Map:
		want = "object"
	case typ.Kind() == reflect.Struct:
		compareObject(t, defs, where, fv, prop)
		return
	}
	if want != "" && resolved["type"] != want {
		t.Errorf("%s: Go type %s, schema type %v, want %q", where, typ, resolved["type"], want)
	}
	checkDefault(t, where, fv, prop)
}

// checkDefault compares a Go default with the schema's "default": a zero
// Go value needs no documented default (or a zero one).
func checkDefault(t *testing.T, where string, fv reflect.Value, prop map[string]any) {
	t.Helper()
	def, has := prop["default"]
	if fv.Kind() == reflect.Map {
		return // policy maps (allowed origins) have no default
	}
	goVal := fv.Interface()
	if d, ok := goVal.(time.Duration); ok {
		goVal = pipeline.Duration(d)
	}
	if d, ok := goVal.(pipeline.Duration); ok {
		if !has {
			if d != 0 {
				t.Errorf("%s: default %s is not in the schema", where, d)
			}
			return
		}
		var sd pipeline.Duration
		if err := sd.UnmarshalText([]byte(fmt.Sprint(def))); err != nil || sd != d {
			t.Errorf("%s: schema default %v, Go default %s", where, def, d)
		}
		return
	}
	raw, _ := json.Marshal(goVal)
	var g any
	_ = json.Unmarshal(raw, &g)
	if !has {
		if !fv.IsZero() {
			t.Errorf("%s: default %s is not in the schema", where, raw)
		}
		return
	}
	if fv.IsZero() && (def == false || def == "" || def == 0.0) {
		return
	}
	if fmt.Sprint(normalizeDefault(g)) != fmt.Sprint(normalizeDefault(def)) {
		t.Errorf("%s: schema default %v, Go default %s", where, def, raw)
	}
}

// jsonFields lists the JSON keys a struct decodes, embedded structs
// flattened as encoding/json does.
func jsonFields(typ reflect.Type) map[string]reflect.StructField {
	out := map[string]reflect.StructField{}
	for _, f := range reflect.VisibleFields(typ) {
		if f.Anonymous {
			continue
		}
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		if name == "" {
			name = f.Name
		}
		out[name] = f
	}
	return out
}

// koanfFields lists the configuration keys of a struct (koanf tags,
// ",squash" flattened); struct-valued keys are returned with their type.
func koanfFields(typ reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := 0; i < typ.NumField(); i++ {
		f := typ.Field(i)
		tag := f.Tag.Get("koanf")
		if tag == "-" || !f.IsExported() {
			continue
		}
		if strings.HasSuffix(tag, ",squash") {
			for k, v := range koanfFields(f.Type) {
				out[k] = v
			}
			continue
		}
		ft := f.Type
		if ft.Kind() == reflect.Map {
			ft = reflect.TypeOf("") // handler blocks: checked by name elsewhere
		}
		out[tag] = ft
	}
	return out
}

func ignored(prop any) bool {
	m, _ := prop.(map[string]any)
	d, _ := m["description"].(string)
	return strings.Contains(d, "accepted and ignored by portcullis")
}

func camel(snake string) string {
	parts := strings.Split(snake, "_")
	for i, p := range parts {
		parts[i] = strings.ToUpper(p[:1]) + p[1:]
	}
	return strings.Join(parts, "")
}

func handlerEnum(prop map[string]any) map[string]bool {
	if items, ok := prop["items"].(map[string]any); ok {
		prop = items
	}
	out := map[string]bool{}
	for _, n := range prop["properties"].(map[string]any)["handler"].(map[string]any)["enum"].([]any) {
		out[n.(string)] = true
	}
	return out
}

func load(t *testing.T, name string) map[string]any {
	t.Helper()
	var b []byte
	if name == "config.schema.json" {
		b = schemas.Config()
	} else {
		b = schemas.Rules()
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return m
}

// resolve follows a local or config.schema.json $ref.
func resolve(t *testing.T, defs map[string]any, s map[string]any) map[string]any {
	t.Helper()
	ref, ok := s["$ref"].(string)
	if !ok {
		return s
	}
	_, name, _ := strings.Cut(ref, "#/$defs/")
	d, ok := defs[name].(map[string]any)
	if !ok {
		t.Fatalf("unresolved $ref %q", ref)
	}
	return d
}

// walk returns the schema of a dotted configuration key.
func walk(t *testing.T, s map[string]any, key string) map[string]any {
	t.Helper()
	defs := s["$defs"].(map[string]any)
	cur := s
	for _, part := range strings.Split(key, ".") {
		cur = resolve(t, defs, cur)
		props, _ := cur["properties"].(map[string]any)
		next, ok := props[part].(map[string]any)
		if !ok {
			t.Fatalf("config.schema.json: no key %q (at %q)", key, part)
		}
		cur = next
	}
	return cur
}

// checker is the schemas compiled for one test.
func checker(t *testing.T) *schemas.Checker {
	t.Helper()
	c, err := schemas.New()
	if err != nil {
		t.Fatal(err)
	}
	return c
}
