package demoapp

import (
	"encoding/json"
	"reflect"
	"testing"
)

// TestFieldsFromNodes covers the node kinds Kratos sends for methods the
// quickstart does not turn on (codes, TOTP, WebAuthn, lookup secrets), so
// the pages keep working when a reader turns them on.
func TestFieldsFromNodes(t *testing.T) {
	cases := []struct {
		name string
		node string
		want []field
	}{
		{"hidden", `{"type":"input","group":"default","attributes":{"name":"csrf_token","type":"hidden","value":"tok"}}`,
			[]field{{Kind: "hidden", Name: "csrf_token", Type: "hidden", Value: "tok"}}},
		{"text input with label and message", `{"type":"input","attributes":{"name":"identifier","type":"text","value":"a@b.c","required":true,"autocomplete":"username"},"messages":[{"id":4000002,"text":"Property identifier is missing.","type":"error"}],"meta":{"label":{"text":"E-Mail"}}}`,
			[]field{{Kind: "input", Name: "identifier", Type: "text", Value: "a@b.c", Required: true, Autocomplete: "username", Label: "E-Mail",
				Messages: []message{{ID: 4000002, Text: "Property identifier is missing.", Type: "error"}}}}},
		{"input without label uses its name", `{"type":"input","attributes":{"name":"code","type":"text"}}`,
			[]field{{Kind: "input", Name: "code", Type: "text", Label: "code"}}},
		{"submit", `{"type":"input","attributes":{"name":"method","type":"submit","value":"password"},"meta":{"label":{"text":"Sign in"}}}`,
			[]field{{Kind: "button", Name: "method", Type: "submit", Value: "password", Label: "Sign in"}}},
		{"submit without label shows its value", `{"type":"input","attributes":{"name":"method","type":"submit","value":"code"}}`,
			[]field{{Kind: "button", Name: "method", Type: "submit", Value: "code", Label: "code"}}},
		{"checkbox", `{"type":"input","attributes":{"name":"lookup_secret_confirm","type":"checkbox","value":true},"meta":{"label":{"text":"Saved"}}}`,
			[]field{{Kind: "checkbox", Name: "lookup_secret_confirm", Type: "checkbox", Value: "true", Checked: true, Label: "Saved"}}},
		{"number value", `{"type":"input","attributes":{"name":"n","type":"number","value":42}}`,
			[]field{{Kind: "input", Name: "n", Type: "number", Value: "42", Label: "n"}}},
		{"text", `{"type":"text","attributes":{"id":"totp_secret_key","text":{"text":"JBSWY3DPEHPK3PXP"}}}`,
			[]field{{Kind: "text", Text: "JBSWY3DPEHPK3PXP"}}},
		{"link", `{"type":"a","attributes":{"href":"/recovery","title":{"text":"Forgot password?"}}}`,
			[]field{{Kind: "link", Href: "/recovery", Text: "Forgot password?"}}},
		{"image", `{"type":"img","attributes":{"src":"data:image/png;base64,AA=="},"meta":{"label":{"text":"QR code"}}}`,
			[]field{{Kind: "image", Src: "data:image/png;base64,AA==", Label: "QR code"}}},
		{"script is left out", `{"type":"script","attributes":{"src":"/webauthn.js"}}`, []field{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var f flow
			if err := json.Unmarshal([]byte(`{"ui":{"nodes":[`+tc.node+`]}}`), &f); err != nil {
				t.Fatal(err)
			}
			if got := f.fields(); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("fields() = %+v\nwant %+v", got, tc.want)
			}
		})
	}
}
