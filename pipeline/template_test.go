package pipeline

import (
	"net/http/httptest"
	"testing"
)

func TestTemplates(t *testing.T) {
	r := httptest.NewRequest("GET", "http://app/users/alice?x=1", nil)
	r.Header.Set("X-Trace", "t1")
	s := NewSession(r, r.URL, []string{"alice"})
	s.Subject = "user-1"
	s.Extra = map[string]any{"identity": map[string]any{"traits": map[string]any{"email": "a@example.com"}}}
	cases := []struct{ tpl, want string }{
		{"{{ print .Subject }}", "user-1"},
		{"{{ print .Extra.identity.traits.email }}", "a@example.com"},
		{"{{ .Extra.missing }}", "<no value>"},
		{"{{ print .Extra.missing }}", ""},
		{"{{ printIndex .MatchContext.RegexpCaptureGroups 0 }}", "alice"},
		{"{{ printIndex .MatchContext.RegexpCaptureGroups 5 }}", ""},
		{"{{ .MatchContext.URL.Path }} {{ .MatchContext.Method }}", "/users/alice GET"},
		{"{{ .MatchContext.Header.Get \"X-Trace\" }}", "t1"},
		{"{{ .Subject | upper }}", "USER-1"},
		{"{{ list 1 2 | join \",\" }}", "1,2"},
	}
	for _, tc := range cases {
		tpl, err := ParseTemplate("t", tc.tpl)
		if err != nil {
			t.Fatalf("%s: %v", tc.tpl, err)
		}
		got, err := tpl.Execute(s)
		if err != nil {
			t.Fatalf("%s: %v", tc.tpl, err)
		}
		if got != tc.want {
			t.Errorf("%s = %q, want %q", tc.tpl, got, tc.want)
		}
	}
	if _, err := ParseTemplate("t", "{{ env \"HOME\" }}"); err == nil {
		t.Error("env must not be available to rule templates")
	}
	if _, err := ParseTemplate("t", "{{ .Subject "); err == nil {
		t.Error("broken template compiled")
	}
}
