package rules

import (
	"bytes"
	"encoding/json"
	"fmt"
	"github.com/portcullis-proxy/portcullis/internal/docsyntax"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/portcullis-proxy/portcullis/pipeline"
)

// Sourced is a rule with the place it was read from.
type Sourced struct {
	Rule
	// File names the repository entry the rule came from.
	File string
	// Line is the 1-based line of the rule in File (0 when unknown).
	Line int
	// node keeps the rule's YAML node so compile errors can point at the
	// offending key's line.
	node *yaml.Node
}

// Pos formats the rule's position as file:line.
func (s Sourced) Pos() string { return fmt.Sprintf("%s:%d", s.File, s.Line) }

// LineOf returns the line of the value at path (keys, or decimal indexes
// for lists) inside the rule, or the rule's own line when not found.
func (s Sourced) LineOf(path ...string) int {
	n := s.node
	for _, p := range path {
		if n == nil {
			break
		}
		next := childNode(n, p)
		if next == nil {
			break
		}
		n = next
	}
	if n == nil {
		return s.Line
	}
	return n.Line
}

func childNode(n *yaml.Node, key string) *yaml.Node {
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == key {
				return n.Content[i+1]
			}
		}
	case yaml.SequenceNode:
		var idx int
		if _, err := fmt.Sscanf(key, "%d", &idx); err == nil && idx >= 0 && idx < len(n.Content) {
			return n.Content[idx]
		}
	}
	return nil
}

// PosError is an error at a place in a rules or configuration file. Its
// message reads "file:line: what is wrong".
type PosError struct {
	File string
	Line int
	Err  error
}

func (e *PosError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %v", e.File, e.Line, e.Err)
	}
	return fmt.Sprintf("%s: %v", e.File, e.Err)
}

// Unwrap returns the underlying error.
func (e *PosError) Unwrap() error { return e.Err }

// Errors is a list of errors reported together (every problem of a rule
// set, not just the first).
type Errors []error

func (es Errors) Error() string {
	msgs := make([]string, len(es))
	for i, e := range es {
		msgs[i] = e.Error()
	}
	return strings.Join(msgs, "\n")
}

// Parse reads an Oathkeeper rules document (a JSON array or YAML sequence
// of rules; an empty document is an empty list). file names the source in
// errors. Unknown keys are errors, reported with their line.
func Parse(file string, data []byte) ([]Sourced, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, nil
	}
	if docsyntax.IsJSON(file) {
		if e := docsyntax.CheckJSON(file, data); e != nil {
			return nil, e
		}
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, docsyntax.Locate(file, data, err)
	}
	if len(doc.Content) == 0 {
		return nil, nil
	}
	root := doc.Content[0]
	if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
		return nil, nil
	}
	if root.Kind != yaml.SequenceNode {
		return nil, &PosError{File: file, Line: root.Line, Err: fmt.Errorf("expected a list of rules, got a %s", kindName(root))}
	}
	var out []Sourced
	var errs Errors
	for _, item := range root.Content {
		s := Sourced{File: file, Line: item.Line, node: item}
		if err := decodeNode(item, &s.Rule); err != nil {
			errs = append(errs, &PosError{File: file, Line: lineForDecodeError(item, err), Err: err})
			continue
		}
		out = append(out, s)
	}
	if len(errs) > 0 {
		return out, errs
	}
	return out, nil
}

// decodeNode converts a YAML node to JSON and decodes it strictly, so the
// rule types need only JSON tags and json.RawMessage config stays raw.
func decodeNode(n *yaml.Node, v any) error {
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("expected a rule (a mapping), got a %s", kindName(n))
	}
	var generic any
	if err := n.Decode(&generic); err != nil {
		return err
	}
	raw, err := json.Marshal(pipeline.JSONCompatible(generic))
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if te, ok := err.(*json.UnmarshalTypeError); ok {
			return fmt.Errorf("key %q: expected %s, got %s", te.Field, te.Type, te.Value)
		}
		return err
	}
	return nil
}

// lineForDecodeError finds the line of the key a decode error names.
func lineForDecodeError(n *yaml.Node, err error) int {
	msg := err.Error()
	if i := strings.Index(msg, `unknown field "`); i >= 0 {
		key := msg[i+len(`unknown field "`):]
		key = key[:strings.IndexByte(key, '"')]
		if l := findKeyLine(n, key); l > 0 {
			return l
		}
	}
	if i := strings.Index(msg, `key "`); i >= 0 {
		path := msg[i+len(`key "`):]
		path = path[:strings.IndexByte(path, '"')]
		cur := n
		for _, p := range strings.Split(path, ".") {
			next := childNode(cur, p)
			if next == nil {
				break
			}
			cur = next
		}
		return cur.Line
	}
	return n.Line
}

func findKeyLine(n *yaml.Node, key string) int {
	if n.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == key {
				return n.Content[i].Line
			}
		}
	}
	for _, c := range n.Content {
		// Handler configs are free-form; do not look inside them.
		if l := findKeyLine(c, key); l > 0 {
			return l
		}
	}
	return 0
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "mapping"
	case yaml.SequenceNode:
		return "list"
	case yaml.ScalarNode:
		return "scalar"
	default:
		return "document"
	}
}
