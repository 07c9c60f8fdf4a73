package pipeline

import (
	"bytes"
	"net/http/httptest"
	"testing"
)

// TestTemplateFastPath renders every template both ways — through the
// compiled parts and through text/template — for several sessions and
// requires the same bytes (and the same error-ness), and checks which
// templates take the fast path at all.
func TestTemplateFastPath(t *testing.T) {
	cases := []struct {
		tpl  string
		fast bool
	}{
		{"{{ print .Subject }}", true},
		{"{{ .Subject }}", true},
		{"{{.Subject}}", true},
		{"Bearer {{ .Subject }}", true},
		{"{{ .Subject }}-{{ .MatchContext.Method }}!", true},
		{"{{- .Subject -}}  ", true},
		{"  {{- print .Subject }}", true},
		{"plain text", true},
		{"", true},
		{"{{/* a comment */}}{{ .Subject }}", true},
		{"{{ .SessionID }}", true},
		{"{{ .Authenticator }}", true},
		{`{{ define "x" }}a{{ end }}`, true},
		{`{{ define "x" }}a{{ end }}{{ template "x" . }}`, false},
		{"{{ print .Subject .Subject }}", false},
		{"{{ .Subject | print }}", false},
		{"{{ .Subject | upper }}", false},
		{"{{ printf \"%s\" .Subject }}", false},
		{"{{ .Extra.email }}", false},
		{"{{ print .Extra.email }}", false},
		{"{{ .MatchContext.URL.Path }}", false},
		{"{{ .MatchContext.Header }}", false},
		{"{{ .ExpiresAt }}", false},
		{"{{ printIndex .MatchContext.RegexpCaptureGroups 0 }}", false},
		{"{{ if .Subject }}yes{{ end }}", false},
		{"{{ $s := .Subject }}{{ $s }}", false},
		{"{{ . }}", false},
		{"{{ .Missing }}", false},
	}
	r := httptest.NewRequest("GET", "http://app/users/alice", nil)
	sessions := []*Session{
		NewSession(r, r.URL, nil),
		{Subject: "anonymous"},
		{Subject: "user-1", SessionID: "s1", Authenticator: "bearer_token", MatchContext: MatchContext{Method: "DELETE"}},
		{Subject: "<b>\"quoted\" & ünïcode\n\x00", Extra: map[string]any{"email": "a@example.com"}},
	}
	for _, tc := range cases {
		tpl, err := ParseTemplate("t", tc.tpl)
		if err != nil {
			t.Fatalf("%q: %v", tc.tpl, err)
		}
		if tpl.hasFast != tc.fast {
			t.Errorf("%q: fast path = %v, want %v", tc.tpl, tpl.hasFast, tc.fast)
		}
		for i, s := range sessions {
			got, gotErr := tpl.Execute(s)
			var b bytes.Buffer
			wantErr := tpl.t.Execute(&b, s)
			if (gotErr != nil) != (wantErr != nil) || got != b.String() && wantErr == nil {
				t.Errorf("%q with session %d = %q, %v; text/template: %q, %v", tc.tpl, i, got, gotErr, b.String(), wantErr)
			}
		}
	}
}

// A nil session, or data that is not a session, still goes through
// text/template.
func TestTemplateFastPathOtherData(t *testing.T) {
	tpl, err := ParseTemplate("t", "{{ .Subject }}")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := tpl.Execute(map[string]string{"Subject": "m"}); err != nil || got != "m" {
		t.Errorf("map data = %q, %v", got, err)
	}
	var nilSession *Session
	if _, err := tpl.Execute(nilSession); err == nil {
		t.Error("a nil *Session must fail as text/template fails")
	}
}

func BenchmarkTemplate(b *testing.B) {
	s := &Session{Subject: "anonymous"}
	for _, src := range []string{"{{ print .Subject }}", "{{ .Subject | upper }}"} {
		tpl, err := ParseTemplate("t", src)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(src, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := tpl.Execute(s); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
