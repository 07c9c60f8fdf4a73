package pipeline

import (
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

func TestParseTemplatesInNameOrder(t *testing.T) {
	ts, err := ParseTemplates("headers", map[string]string{"X-B": "b:{{ .Subject }}", "X-A": "a:{{ .Subject }}"})
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest("GET", "http://x/", nil)
	u, _ := url.Parse("http://x/")
	s := NewSession(r, u, nil)
	s.Subject = "alice"
	var got []string
	for _, nt := range ts {
		v, err := nt.Execute(s)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, nt.Name+"="+v)
	}
	if strings.Join(got, " ") != "X-A=a:alice X-B=b:alice" {
		t.Errorf("ParseTemplates rendered %q, want them in name order", got)
	}
	if _, err := ParseTemplates("headers", map[string]string{"X-Bad": "{{"}); err == nil || !strings.Contains(err.Error(), "template headers.X-Bad:") {
		t.Errorf("a template that does not parse: %v", err)
	}
}
