package pipeline

import (
	"bytes"
	"fmt"
	"sort"
	"text/template"

	"github.com/Masterminds/sprig/v3"
)

// funcs is the function set of Oathkeeper's templates: sprig's text
// functions plus print (nil-safe fmt.Sprint) and printIndex (nil-safe index
// into a string slice, "" when out of range).
var funcs = func() template.FuncMap {
	m := sprig.TxtFuncMap()
	// Functions that read the environment would let a rule author exfiltrate
	// the proxy's secrets into upstream headers.
	delete(m, "env")
	delete(m, "expandenv")
	m["print"] = func(v ...any) string {
		if len(v) == 1 && v[0] == nil {
			return ""
		}
		return fmt.Sprint(v...)
	}
	m["printIndex"] = func(list []string, i int) string {
		if i < 0 || i >= len(list) {
			return ""
		}
		return list[i]
	}
	return m
}()

// Template is a compiled Go text/template with Oathkeeper's options
// (missingkey=zero) and functions. It is compiled when rules load and is
// safe for concurrent use.
type Template struct {
	t   *template.Template
	src string
	// fast renders a *Session without the template engine when the
	// template is only text and string fields of the session (see
	// template_fast.go); nil otherwise.
	fast []fastPart
	// hasFast tells a compiled empty template from none.
	hasFast bool
}

// ParseTemplate compiles text; name appears in error messages.
func ParseTemplate(name, text string) (*Template, error) {
	t, err := template.New(name).Option("missingkey=zero").Funcs(funcs).Parse(text)
	if err != nil {
		return nil, fmt.Errorf("template %s: %w", name, err)
	}
	fast, ok := compileFast(t.Tree)
	return &Template{t: t, src: text, fast: fast, hasFast: ok}, nil
}

// NamedTemplate is one entry of a name-to-template map of a handler's
// config (headers, cookies, context entries), compiled.
type NamedTemplate struct {
	Name string
	*Template
}

// ParseTemplates compiles each template of m in name order, so a handler
// applies them in a stable order; key names the map in errors
// ("template headers.X-User: ...").
func ParseTemplates(key string, m map[string]string) ([]NamedTemplate, error) {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	out := make([]NamedTemplate, 0, len(names))
	for _, n := range names {
		t, err := ParseTemplate(key+"."+n, m[n])
		if err != nil {
			return nil, err
		}
		out = append(out, NamedTemplate{Name: n, Template: t})
	}
	return out, nil
}

// Execute renders the template with data (usually a *Session).
func (t *Template) Execute(data any) (string, error) {
	if s, ok := data.(*Session); ok && s != nil && t.hasFast {
		return executeFast(t.fast, s), nil
	}
	var b bytes.Buffer
	if err := t.t.Execute(&b, data); err != nil {
		return "", err
	}
	return b.String(), nil
}

// Source returns the template text.
func (t *Template) Source() string { return t.src }
