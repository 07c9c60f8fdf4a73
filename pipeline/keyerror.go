package pipeline

import (
	"fmt"
	"strconv"
	"strings"
)

// KeyError is a configuration value that did not decode or validate. Path
// names its key from the top of the block decoded (["match", "methods"]),
// a list item by its decimal index; Err says what is wrong with the value
// and does not repeat the key. A caller that knows where the block is
// written finds the line with [KeyPath] and a YAML lookup, never by reading
// the message.
type KeyError struct {
	Path []string
	Err  error
}

// Error reads `key "match.methods": what is wrong`.
func (e *KeyError) Error() string {
	name := FormatPath(e.Path)
	if name == "" {
		name = "(top level)"
	}
	return fmt.Sprintf("key %q: %v", name, e.Err)
}

// Unwrap returns Err.
func (e *KeyError) Unwrap() error { return e.Err }

// UnknownKeyError is a key the decoded type does not have; Path names it
// (its last step is the key itself).
type UnknownKeyError struct {
	Path []string
}

// Error reads `json: unknown field "name"`, encoding/json's wording, which
// portcullis's messages have always used.
func (e *UnknownKeyError) Error() string {
	name := ""
	if len(e.Path) > 0 {
		name = e.Path[len(e.Path)-1]
	}
	return fmt.Sprintf("json: unknown field %q", name)
}

// KeyPath returns the key path of the first [*KeyError] or
// [*UnknownKeyError] in err's chain (searched as [errors.As] does), and
// whether there is one.
func KeyPath(err error) (path []string, ok bool) {
	walk(err, func(e error) bool {
		switch t := e.(type) {
		case *KeyError:
			path, ok = t.Path, true
		case *UnknownKeyError:
			path, ok = t.Path, true
		}
		return !ok
	})
	return path, ok
}

// walk visits err's chain depth first, as errors.As does, until visit
// returns false.
func walk(err error, visit func(error) bool) bool {
	if err == nil {
		return true
	}
	if !visit(err) {
		return false
	}
	switch u := err.(type) {
	case interface{ Unwrap() error }:
		return walk(u.Unwrap(), visit)
	case interface{ Unwrap() []error }:
		for _, e := range u.Unwrap() {
			if !walk(e, visit) {
				return false
			}
		}
	}
	return true
}

// FormatPath renders a key path as the configuration names keys: steps
// joined by dots, list indexes in brackets (access_rules.repositories[1]).
func FormatPath(path []string) string {
	var b strings.Builder
	for i, step := range path {
		if _, err := strconv.Atoi(step); err == nil {
			b.WriteString("[" + step + "]")
			continue
		}
		if i > 0 {
			b.WriteByte('.')
		}
		b.WriteString(step)
	}
	return b.String()
}
