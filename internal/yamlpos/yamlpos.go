// Package yamlpos finds where a key path is written in a parsed YAML
// document, so that an error about a value (a configuration key, a rule's
// field) can name its file:line.
//
// A path is a list of steps from a node: a mapping key by its exact name,
// or a sequence item by its decimal index ("0", "1", ...). Both the
// configuration (config) and the access rules (rules) use it; JSON
// documents are YAML too, so the same lookup serves them.
package yamlpos

import (
	"strconv"

	"gopkg.in/yaml.v3"
)

// Line returns the line where the deepest step of path found below n is
// written: for a mapping entry the line of its key, for a sequence item
// the line the item starts on. It is 0 when n is nil or path's first step
// is not found (a default, or a value from the environment); an empty path
// gives n's own line. A document node stands for its content.
func Line(n *yaml.Node, path ...string) int {
	n = content(n)
	if n == nil {
		return 0
	}
	if len(path) == 0 {
		return n.Line
	}
	line := 0
	for _, step := range path {
		next, at := Child(n, step)
		if next == nil {
			break
		}
		n, line = next, at
	}
	return line
}

// content skips the document node yaml.Unmarshal returns at the top.
func content(n *yaml.Node) *yaml.Node {
	if n != nil && n.Kind == yaml.DocumentNode {
		if len(n.Content) == 0 {
			return nil
		}
		return n.Content[0]
	}
	return n
}

// Child returns the value under step in n (a mapping key, or a decimal
// index in a sequence; an alias is looked into) and the line it is written
// at: its key's line in a mapping, the item's in a sequence. It is nil, 0
// when n has no such step.
func Child(n *yaml.Node, step string) (*yaml.Node, int) {
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == step {
				return n.Content[i+1], n.Content[i].Line
			}
		}
	case yaml.SequenceNode:
		if i, err := strconv.Atoi(step); err == nil && i >= 0 && i < len(n.Content) {
			return n.Content[i], n.Content[i].Line
		}
	case yaml.AliasNode:
		if n.Alias != nil {
			return Child(n.Alias, step)
		}
	}
	return nil, 0
}
