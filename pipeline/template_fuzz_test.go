package pipeline

import (
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

// ruleTemplates are templates as rules write them (Oathkeeper's examples
// and ours): whatever a request carries, they render without error.
var ruleTemplates = []string{
	`{{ print .Subject }}`,
	`{{ print .Extra.identity.traits.email }}`,
	`{{ printIndex .MatchContext.RegexpCaptureGroups 0 }}`,
	`{{ .MatchContext.URL.Path }} {{ .MatchContext.Method }}`,
	`{{ .MatchContext.Header.Get "X-Trace" }}`,
	`{{ .Subject | upper | trunc 64 }}`,
	`{"sub": {{ .Subject | quote }}, "roles": {{ .Extra.roles | toJson }}}`,
	`{{ if .Extra.admin }}admin{{ else }}user{{ end }}`,
	`{{ range $k, $v := .Extra }}{{ $k }}={{ $v }};{{ end }}`,
	`{{ .MatchContext.URL.Query.Get "tenant" | default "none" }}`,
}

// unbounded matches template text whose run time or output is not bounded
// by its input: loops over numbers, repetition, recursion. Rule authors are
// trusted with those; a fuzzer would only find that they are slow.
var unbounded = regexp.MustCompile(`range|until|repeat|seq|template|block|define|[0-9]{4,}|0x|e[0-9]|\bpad|wrap|indent|bcrypt|htpasswd|gen[A-Z]|derive|build|\bdate|now|rand|uuid|ago|sleep`)

// FuzzTemplate renders the rule templates above with arbitrary request
// data (subject, an Extra value, a header, a capture group, the path and
// query), and arbitrary template text with a fixed session. Whatever the
// input: no panic; the rule templates never fail; any text either fails to
// parse or renders the same output twice.
func FuzzTemplate(f *testing.F) {
	for i, tpl := range ruleTemplates {
		f.Add(tpl, "user-1", "a@example.com", "t1", "alice", "/users/alice", "tenant=x", i%2 == 0)
	}
	f.Add("{{ .Subject ", "", "", "", "", "/", "", true)
	f.Add(`{{ env "HOME" }}`, "", "", "", "", "/", "", true)
	f.Add(`{{ .Extra.a.b.c.d }}{{ index .Extra "k" }}`, "x", "", "", "", "/", "", true)
	f.Add(`{{ fail "boom" }}`, "x", "", "", "", "/", "", true)
	f.Add(`{{ printIndex .MatchContext.RegexpCaptureGroups -1 }}{{ slice .Subject 3 1 }}`, "ab", "", "", "", "/", "", true)
	f.Add(`{{ .Subject | b64dec | fromJson }}`, "not base64", "{", "\x00", "\xff", "/%zz", "%%", false)
	f.Fuzz(func(t *testing.T, text, subject, extra, header, group, path, query string, asRule bool) {
		r := httptest.NewRequest("GET", "http://app.test/", nil)
		r.URL.Path, r.URL.RawQuery = path, query
		r.Header["X-Trace"] = []string{header}
		s := NewSession(r, r.URL, []string{group})
		s.Subject = subject
		s.Extra = map[string]any{
			"identity": map[string]any{"traits": map[string]any{"email": extra}},
			"roles":    []any{extra, subject},
			"admin":    extra != "",
			extra:      header,
		}
		if asRule {
			for _, src := range ruleTemplates {
				tpl, err := ParseTemplate("rule", src)
				if err != nil {
					t.Fatalf("%s: %v", src, err)
				}
				if _, err := tpl.Execute(s); err != nil {
					t.Fatalf("%s failed on request data: %v", src, err)
				}
			}
			return
		}
		if len(text) > 512 || unbounded.MatchString(strings.ToLower(text)) {
			return
		}
		tpl, err := ParseTemplate("fuzz", text)
		if err != nil {
			return
		}
		out1, err1 := tpl.Execute(s)
		out2, err2 := tpl.Execute(s)
		if out1 != out2 || (err1 == nil) != (err2 == nil) {
			t.Fatalf("%q rendered differently twice: %q (%v) / %q (%v)", text, out1, err1, out2, err2)
		}
	})
}
