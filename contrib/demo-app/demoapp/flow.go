package demoapp

import (
	"fmt"
	"strings"
)

// flow is the part of a Kratos self-service flow (login or registration)
// a page needs: the form Kratos wants rendered, as a list of UI nodes.
// Kratos decides the fields, their order, their values (CSRF token, the
// identifier typed before) and the messages; the page only renders them and
// lets the browser submit the form to Kratos's action URL.
type flow struct {
	ID       string `json:"id"`
	Type     string `json:"type"`
	ReturnTo string `json:"return_to"`
	UI       struct {
		Action   string    `json:"action"`
		Method   string    `json:"method"`
		Messages []message `json:"messages"`
		Nodes    []node    `json:"nodes"`
	} `json:"ui"`
}

// message is a text Kratos shows the visitor (an error, a hint, a label).
type message struct {
	ID   int64  `json:"id"`
	Text string `json:"text"`
	Type string `json:"type"` // info, error, success
}

// node is one UI node. Type is "input", "text", "a", "img" or "script";
// the attributes that apply depend on it.
type node struct {
	Type       string         `json:"type"`
	Group      string         `json:"group"`
	Attributes nodeAttributes `json:"attributes"`
	Messages   []message      `json:"messages"`
	Meta       struct {
		Label *message `json:"label"`
	} `json:"meta"`
}

type nodeAttributes struct {
	// input
	Name         string `json:"name"`
	Type         string `json:"type"`
	Value        any    `json:"value"`
	Required     bool   `json:"required"`
	Disabled     bool   `json:"disabled"`
	Autocomplete string `json:"autocomplete"`
	Pattern      string `json:"pattern"`
	// a
	Href  string   `json:"href"`
	Title *message `json:"title"`
	// img
	Src string `json:"src"`
	// text
	Text *message `json:"text"`
	ID   string   `json:"id"`
}

// field is a node prepared for the template: Kind says which element to
// render ("hidden", "input", "checkbox", "button", "text", "link", "image").
// Nodes the page cannot render (scripts for WebAuthn) are left out.
type field struct {
	Kind         string
	Name         string
	Type         string
	Value        string
	Checked      bool
	Label        string
	Required     bool
	Disabled     bool
	Autocomplete string
	Pattern      string
	Href         string
	Src          string
	Text         string
	Messages     []message
}

// fields turns the flow's nodes into template fields, in Kratos's order.
func (f *flow) fields() []field {
	out := make([]field, 0, len(f.UI.Nodes))
	for _, n := range f.UI.Nodes {
		a := n.Attributes
		fd := field{Messages: n.Messages}
		if n.Meta.Label != nil {
			fd.Label = n.Meta.Label.Text
		}
		switch n.Type {
		case "input":
			fd.Name, fd.Type, fd.Required, fd.Disabled = a.Name, a.Type, a.Required, a.Disabled
			fd.Autocomplete, fd.Pattern = a.Autocomplete, a.Pattern
			fd.Value = valueString(a.Value)
			switch a.Type {
			case "hidden":
				fd.Kind = "hidden"
			case "submit", "button":
				fd.Kind = "button"
				if fd.Label == "" {
					fd.Label = fd.Value
				}
			case "checkbox":
				fd.Kind = "checkbox"
				fd.Checked = a.Value == true
				fd.Value = "true"
			default:
				fd.Kind = "input"
				if fd.Label == "" {
					fd.Label = a.Name
				}
			}
		case "text":
			fd.Kind = "text"
			if a.Text != nil {
				fd.Text = a.Text.Text
			}
		case "a":
			fd.Kind, fd.Href = "link", a.Href
			if a.Title != nil {
				fd.Text = a.Title.Text
			}
		case "img":
			fd.Kind, fd.Src = "image", a.Src
		default:
			continue
		}
		out = append(out, fd)
	}
	return out
}

// valueString renders a node value (string, number, bool or absent).
func valueString(v any) string {
	switch v := v.(type) {
	case nil:
		return ""
	case string:
		return v
	case float64:
		return strings.TrimSuffix(strings.TrimRight(fmt.Sprintf("%f", v), "0"), ".")
	default:
		return fmt.Sprint(v)
	}
}
