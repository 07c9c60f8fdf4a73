package pipeline

import (
	"reflect"
	"strings"
	"text/template/parse"
)

// The templates most rules carry are text around string fields of the
// session: `{{ print .Subject }}`, `Bearer {{ .Subject }}`,
// `{{ .MatchContext.Method }}`. Running text/template for them costs a
// dozen allocations and a reflective call of print per request, so such a
// template is compiled, when it is parsed, into its parts: literal text and
// paths to string fields. The result is exactly what text/template writes:
// a string field is printed verbatim, and print of one string is that
// string. Anything else — other functions, pipelines, conditions, maps,
// pointers, non-string fields, data other than a non-nil *Session — runs
// the template as before.

// fastPart is literal text, or the string field at index of a Session.
type fastPart struct {
	text  string
	index []int // nil for text
}

var (
	sessionType = reflect.TypeOf(Session{})
	stringType  = reflect.TypeOf("")
)

// compileFast returns the parts of a template made only of text and
// actions printing a string field of the session, or ok == false.
func compileFast(tree *parse.Tree) (parts []fastPart, ok bool) {
	if tree == nil || tree.Root == nil {
		return nil, false
	}
	for _, n := range tree.Root.Nodes {
		switch n := n.(type) {
		case *parse.TextNode:
			parts = append(parts, fastPart{text: string(n.Text)})
		case *parse.ActionNode:
			index, ok := fieldOf(n.Pipe)
			if !ok {
				return nil, false
			}
			parts = append(parts, fastPart{index: index})
		default:
			return nil, false
		}
	}
	return parts, true
}

// fieldOf recognises `.A.B` and `print .A.B` where the path names string
// fields through struct values of Session, and returns its field index.
func fieldOf(p *parse.PipeNode) ([]int, bool) {
	if p == nil || p.IsAssign || len(p.Decl) > 0 || len(p.Cmds) != 1 {
		return nil, false
	}
	args := p.Cmds[0].Args
	if len(args) == 2 {
		if id, ok := args[0].(*parse.IdentifierNode); !ok || id.Ident != "print" {
			return nil, false
		}
		args = args[1:]
	}
	if len(args) != 1 {
		return nil, false
	}
	f, ok := args[0].(*parse.FieldNode)
	if !ok || len(f.Ident) == 0 {
		return nil, false
	}
	t := sessionType
	var index []int
	for i, name := range f.Ident {
		sf, ok := t.FieldByName(name)
		if !ok || !sf.IsExported() || len(sf.Index) != 1 {
			return nil, false
		}
		index = append(index, sf.Index[0])
		t = sf.Type
		last := i == len(f.Ident)-1
		if (last && t != stringType) || (!last && t.Kind() != reflect.Struct) {
			return nil, false
		}
	}
	return index, true
}

// executeFast renders parts for s.
func executeFast(parts []fastPart, s *Session) string {
	v := reflect.ValueOf(s).Elem()
	if len(parts) == 1 {
		if parts[0].index == nil {
			return parts[0].text
		}
		return v.FieldByIndex(parts[0].index).String()
	}
	var b strings.Builder
	for _, p := range parts {
		if p.index == nil {
			b.WriteString(p.text)
		} else {
			b.WriteString(v.FieldByIndex(p.index).String())
		}
	}
	return b.String()
}
