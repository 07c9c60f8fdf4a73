// Package docsyntax locates syntax errors in YAML and JSON documents (the
// configuration, access rules, rules test cases) so that they read
// file:line:col: syntax error: what.
//
// Documents are decoded with gopkg.in/yaml.v3, whose errors carry a line
// (sometimes the line where the enclosing flow began) but no column. When
// it refuses a document, [Locate] asks a second parser where the problem
// is: encoding/json for JSON documents, github.com/goccy/go-yaml's parser
// for YAML, whose syntax errors carry the offending token's position.
package docsyntax

import (
	"bytes"
	"encoding/json"
	"errors"
	"path/filepath"
	"strconv"
	"strings"
	"unicode/utf8"

	goyaml "github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/parser"
	"gopkg.in/yaml.v3"
)

// Error is a document that is not well-formed YAML or JSON. Col is 0 when
// only the line is known.
type Error struct {
	File      string
	Line, Col int
	Msg       string
}

func (e *Error) Error() string {
	where := e.File
	if e.Line > 0 {
		where += ":" + strconv.Itoa(e.Line)
		if e.Col > 0 {
			where += ":" + strconv.Itoa(e.Col)
		}
	}
	return where + ": syntax error: " + e.Msg
}

// IsJSON reports whether a document is read as JSON: its name ends in
// .json. Such a document must be valid JSON, as Oathkeeper requires, even
// where YAML (a superset) would accept it.
func IsJSON(file string) bool { return strings.EqualFold(filepath.Ext(file), ".json") }

// Parse reads data, the document named file, into a YAML tree: a document
// named .json must be well-formed JSON first. A document that is not
// well-formed is an [*Error] with the best position known.
func Parse(file string, data []byte) (*yaml.Node, error) {
	if IsJSON(file) {
		if e := CheckJSON(file, data); e != nil {
			return nil, e
		}
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, Locate(file, data, err)
	}
	return &doc, nil
}

// CheckJSON returns the syntax error of a JSON document, or nil.
func CheckJSON(file string, data []byte) *Error {
	var v any
	err := json.Unmarshal(data, &v)
	if err == nil {
		return nil
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		// Offset counts the bytes read, the offending one included.
		line, col := position(data, int(se.Offset)-1)
		return &Error{File: file, Line: line, Col: col, Msg: se.Error()}
	}
	var ue *json.UnmarshalTypeError
	if errors.As(err, &ue) {
		return nil // well-formed; the schema judges types
	}
	line, col := position(data, len(data))
	return &Error{File: file, Line: line, Col: col, Msg: err.Error()}
}

// Locate turns yamlErr, yaml.v3's refusal of data, into an *Error with the
// best position known.
func Locate(file string, data []byte, yamlErr error) *Error {
	if IsJSON(file) {
		if e := CheckJSON(file, data); e != nil {
			return e
		}
	}
	if e := goccyLocate(file, data); e != nil {
		return e
	}
	// The second parser accepted what yaml.v3 refused: keep yaml.v3's
	// line and message.
	msg := strings.TrimPrefix(yamlErr.Error(), "yaml: ")
	line := 0
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if n, tail, ok := strings.Cut(rest, ": "); ok {
			if l, err := strconv.Atoi(n); err == nil {
				line, msg = l, tail
			}
		}
	}
	if line == 0 {
		// yaml.v3 gives no line for a character it refuses outright
		// (control characters, invalid UTF-8): point at the first one.
		line, col := position(data, firstUnreadable(data))
		return &Error{File: file, Line: line, Col: col, Msg: msg}
	}
	return &Error{File: file, Line: line, Msg: msg}
}

// goccyLocate returns the second parser's syntax error, or nil when it
// accepts the document (or fails in a way that carries no position).
func goccyLocate(file string, data []byte) (e *Error) {
	defer func() {
		if recover() != nil {
			e = nil // a second opinion only; yaml.v3's error stands
		}
	}()
	_, err := parser.ParseBytes(data, 0)
	var se *goyaml.SyntaxError
	if errors.As(err, &se) && se.Token != nil && se.Token.Position != nil && se.Token.Position.Line > 0 {
		return &Error{File: file, Line: se.Token.Position.Line, Col: max(se.Token.Position.Column, 1), Msg: se.Message}
	}
	return nil
}

// firstUnreadable is the offset of the first byte YAML refuses to read: a
// control character other than tab and line breaks, or invalid UTF-8; 0
// when there is none.
func firstUnreadable(data []byte) int {
	for i := 0; i < len(data); {
		r, w := utf8.DecodeRune(data[i:])
		if (r == utf8.RuneError && w == 1) || (r < 0x20 && r != '\t' && r != '\n' && r != '\r') || r == 0x7f {
			return i
		}
		i += w
	}
	return 0
}

// position converts a byte offset into a 1-based line and column (in
// bytes).
func position(data []byte, off int) (line, col int) {
	off = min(max(off, 0), len(data))
	before := data[:off]
	line = bytes.Count(before, []byte("\n")) + 1
	col = off - bytes.LastIndexByte(before, '\n')
	if col < 1 {
		col = 1
	}
	return line, col
}
