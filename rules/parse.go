package rules

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/portcullis-proxy/portcullis/internal/docsyntax"
	"github.com/portcullis-proxy/portcullis/internal/yamlpos"
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

// LineOf returns the line where the value at path (keys, or decimal
// indexes for lists) is written inside the rule: the deepest step of path
// found, or the rule's own line when not even the first is.
func (s Sourced) LineOf(path ...string) int {
	if line := yamlpos.Line(s.node, path...); line > 0 {
		return line
	}
	return s.Line
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

// Unwrap returns the errors, so that errors.As and errors.Is look into
// each.
func (es Errors) Unwrap() []error { return es }

// Parse reads an Oathkeeper rules document (a JSON array or YAML sequence
// of rules; an empty document is an empty list). file names the source in
// errors. Unknown keys are errors, reported with their line.
func Parse(file string, data []byte) ([]Sourced, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, nil
	}
	doc, err := docsyntax.Parse(file, data)
	if err != nil {
		return nil, err
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
			line := s.Line
			if path, ok := pipeline.KeyPath(err); ok {
				line = s.LineOf(path...)
			}
			errs = append(errs, &PosError{File: file, Line: line, Err: err})
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
// rule types need only JSON tags and json.RawMessage config stays raw. A
// key that is unknown or does not decode is named by a
// [*pipeline.KeyError] or [*pipeline.UnknownKeyError].
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
	return pipeline.DecodeStrict(raw, v)
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
