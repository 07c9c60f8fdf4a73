// Package schemas holds the JSON Schemas (draft 2020-12) of portcullis's
// two file formats — config.schema.json for the configuration and
// rules.schema.json for access rules — and checks YAML or JSON documents
// against them, reporting each problem as file:line: message.
//
// The schemas describe every key with its default, so editors can complete
// and check the files (for example with a "# yaml-language-server:
// $schema=..." comment). rules.schema.json refers to the handler
// definitions in config.schema.json by the relative reference
// "config.schema.json#/$defs/...": keep the two files side by side.
//
// The handler lists of both files — the configuration's handler blocks,
// the rules' handler name enums and the config schema each name selects —
// are derived from the catalog (internal/registry) by `go generate`; what
// each handler's config means is written by hand in its $defs entry. The
// schemas are checked against the Go types they describe by this
// package's tests: every key a handler's config struct decodes, with its
// default, and every registered handler name.
package schemas

//go:generate go test -run ^TestSchemasFollowTheCatalog$ -update .

import (
	"bytes"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/portcullis-proxy/portcullis/internal/docsyntax"
	"github.com/portcullis-proxy/portcullis/internal/yamlpos"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
	"gopkg.in/yaml.v3"

	"github.com/portcullis-proxy/portcullis/pipeline"
)

//go:embed config.schema.json rules.schema.json
var files embed.FS

// base is where the embedded schemas live for reference resolution.
const base = "https://schemas.portcullis.invalid/"

// Config returns config.schema.json.
func Config() []byte { return mustRead("config.schema.json") }

// Rules returns rules.schema.json.
func Rules() []byte { return mustRead("rules.schema.json") }

func mustRead(name string) []byte {
	b, err := files.ReadFile(name)
	if err != nil {
		panic(err) // embedded at build time
	}
	return b
}

// Checker checks documents against the embedded schemas, which [New]
// compiles once. It is safe for concurrent use.
type Checker struct {
	schemas map[string]*jsonschema.Schema
}

// New compiles the embedded schemas. An error means the embedded files
// are broken (this package's tests compile them).
func New() (*Checker, error) {
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	for _, name := range []string{"config.schema.json", "rules.schema.json"} {
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(mustRead(name)))
		if err != nil {
			return nil, fmt.Errorf("schemas: %s: %w", name, err)
		}
		if err := c.AddResource(base+name, doc); err != nil {
			return nil, fmt.Errorf("schemas: %w", err)
		}
	}
	out := map[string]*jsonschema.Schema{}
	for _, name := range []string{"config.schema.json", "rules.schema.json"} {
		s, err := c.Compile(base + name)
		if err != nil {
			return nil, fmt.Errorf("schemas: %w", err)
		}
		out[name] = s
	}
	return &Checker{schemas: out}, nil
}

// Error is one schema violation at a place in a file. Its message reads
// "file:line: where: what is wrong".
type Error struct {
	File string
	Line int
	// Path is the location of the offending value: rule "id", then keys
	// and [indexes] (`rule "a": authenticators[0].config`).
	Path string
	Msg  string
}

func (e *Error) Error() string {
	where := e.File
	if e.Line > 0 {
		where += ":" + strconv.Itoa(e.Line)
	}
	if e.Path == "" {
		return where + ": " + e.Msg
	}
	return where + ": " + e.Path + ": " + e.Msg
}

// CheckRules checks an access rules document (YAML or JSON) against
// rules.schema.json. It returns nil when the document conforms, otherwise
// one *Error per violation, in file order. A document that is not YAML is
// one error; an empty document conforms (it is an empty list).
func (c *Checker) CheckRules(file string, data []byte) []error {
	return c.check("rules.schema.json", file, data, true)
}

// CheckConfig checks a configuration document (YAML or JSON) against
// config.schema.json.
func (c *Checker) CheckConfig(file string, data []byte) []error {
	return c.check("config.schema.json", file, data, false)
}

func (c *Checker) check(schema, file string, data []byte, isRules bool) []error {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil
	}
	if docsyntax.IsJSON(file) {
		if e := docsyntax.CheckJSON(file, data); e != nil {
			return []error{e}
		}
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return []error{docsyntax.Locate(file, data, err)}
	}
	if len(doc.Content) == 0 {
		return nil
	}
	root := doc.Content[0]
	if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
		return nil
	}
	v, err := jsonValue(root)
	if err != nil {
		return []error{&Error{File: file, Line: root.Line, Msg: err.Error()}}
	}
	verr := c.schemas[schema].Validate(v)
	if verr == nil {
		return nil
	}
	var ve *jsonschema.ValidationError
	if !errors.As(verr, &ve) {
		return []error{&Error{File: file, Msg: verr.Error()}}
	}
	var leaves []*jsonschema.ValidationError
	collectLeaves(ve, &leaves)
	p := message.NewPrinter(language.English)
	var out []*Error
	seen := map[string]bool{}
	for _, l := range leaves {
		e := locate(file, root, l.InstanceLocation, l.ErrorKind, isRules)
		e.Msg = describe(l, p)
		if isRules {
			unknownHandler(e, l)
		}
		if key := e.Error(); !seen[key] {
			seen[key] = true
			out = append(out, e)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Line < out[j].Line })
	errs := make([]error, len(out))
	for i, e := range out {
		errs[i] = e
	}
	return errs
}

// describe words an error; unknown keys and malformed durations get
// messages that say what is expected.
func describe(l *jsonschema.ValidationError, p *message.Printer) string {
	switch k := l.ErrorKind.(type) {
	case *kind.AdditionalProperties:
		quoted := make([]string, len(k.Properties))
		for i, prop := range k.Properties {
			quoted[i] = strconv.Quote(prop)
		}
		if len(quoted) == 1 {
			return "unknown key " + quoted[0]
		}
		return "unknown keys " + strings.Join(quoted, ", ")
	case *kind.Pattern:
		if strings.HasSuffix(l.SchemaURL, "/$defs/duration") || strings.HasSuffix(l.SchemaURL, "/$defs/configDuration") {
			return fmt.Sprintf("%q is not a duration such as \"30s\" or \"1h30m\"", k.Got)
		}
	}
	return l.ErrorKind.LocalizedString(p)
}

// ruleKeyKind is the handler kind a rule key lists ("errors": error
// handlers).
func ruleKeyKind(key string) (pipeline.Kind, bool) {
	for _, k := range pipeline.Kinds() {
		if k.RuleKey() == key {
			return k, true
		}
	}
	return 0, false
}

// unknownHandler words a handler name outside the schema's list as the
// rule compiler does: `authenticators[0]: unknown authenticator "x" (known: [...])`.
func unknownHandler(e *Error, l *jsonschema.ValidationError) {
	en, ok := l.ErrorKind.(*kind.Enum)
	loc := l.InstanceLocation
	if !ok || len(loc) < 3 || loc[len(loc)-1] != "handler" {
		return
	}
	k, ok := ruleKeyKind(loc[1])
	if !ok {
		return
	}
	known := make([]string, 0, len(en.Want))
	for _, w := range en.Want {
		known = append(known, fmt.Sprint(w))
	}
	sort.Strings(known)
	e.Path = strings.TrimSuffix(e.Path, ".handler")
	e.Msg = fmt.Sprintf("unknown %s %q (known: %v)", k, fmt.Sprint(en.Got), known)
}

// collectLeaves gathers the innermost errors: they say what is wrong,
// their parents only that a sub-schema failed.
func collectLeaves(e *jsonschema.ValidationError, out *[]*jsonschema.ValidationError) {
	if len(e.Causes) == 0 {
		*out = append(*out, e)
		return
	}
	for _, c := range e.Causes {
		collectLeaves(c, out)
	}
}

// locate finds the line of the value at loc (for a property that is not
// allowed, the line of that key) and formats its path.
func locate(file string, root *yaml.Node, loc []string, k jsonschema.ErrorKind, isRules bool) *Error {
	e := &Error{File: file, Line: root.Line}
	n := root
	var label, path string
	for i, tok := range loc {
		next, keyLine := yamlpos.Child(n, tok)
		if next == nil {
			break
		}
		switch {
		case isRules && i == 0:
			label = ruleLabel(next, tok)
		case n.Kind == yaml.SequenceNode:
			path += "[" + tok + "]"
		case path == "":
			path = tok
		default:
			path += "." + tok
		}
		e.Line = next.Line
		if keyLine > 0 {
			e.Line = keyLine
		}
		n = next
	}
	if ap, ok := k.(*kind.AdditionalProperties); ok && len(ap.Properties) > 0 {
		if _, keyLine := yamlpos.Child(n, ap.Properties[0]); keyLine > 0 {
			e.Line = keyLine
		}
	}
	switch {
	case label != "" && path != "":
		e.Path = label + ": " + path
	case label != "":
		e.Path = label
	default:
		e.Path = path
	}
	return e
}

// ruleLabel names a rule by its id when it has one.
func ruleLabel(n *yaml.Node, index string) string {
	if idNode, _ := yamlpos.Child(n, "id"); idNode != nil && idNode.Kind == yaml.ScalarNode && idNode.Value != "" {
		return "rule " + strconv.Quote(idNode.Value)
	}
	return "rule [" + index + "]"
}

// jsonValue converts a YAML node to the value JSON decoding would give
// (maps with string keys, []any, float64/json.Number, string, bool, nil).
func jsonValue(n *yaml.Node) (any, error) {
	var v any
	if err := n.Decode(&v); err != nil {
		return nil, err
	}
	raw, err := json.Marshal(pipeline.JSONCompatible(v))
	if err != nil {
		return nil, err
	}
	return jsonschema.UnmarshalJSON(bytes.NewReader(raw))
}
