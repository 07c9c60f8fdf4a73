package mutators

import (
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/portcullis-proxy/portcullis/pipeline"
	"github.com/portcullis-proxy/portcullis/testsupport/handlertest"
)

func TestHeaderMutator(t *testing.T) {
	b := handlertest.Enable(t, pipeline.TypedFactory(NewHeader), json.RawMessage(`{"headers":{"X-User":"{{ print .Subject }}"}}`), pipeline.Deps{})
	m := handlertest.Build(t, b, json.RawMessage(`{"headers":{"x-email":"{{ print .Extra.email }}","X-Group":"{{ printIndex .MatchContext.RegexpCaptureGroups 0 }}"}}`))
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("X-User", "spoofed")
	s := pipeline.NewSession(r, r.URL, []string{"g1"})
	s.Subject, s.Extra = "u1", map[string]any{"email": "u@example.com"}
	if err := m.Mutate(r, s); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"X-User": "u1", "X-Email": "u@example.com", "X-Group": "g1"}
	for k, v := range want {
		if got := s.Header.Get(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	if r.Header.Get("X-User") != "spoofed" {
		t.Error("the mutator must not write to the request; the proxy applies the session headers")
	}
	for _, bad := range []string{`{"headers":{}}`, `{"headers":{"X":"{{ .Subject"}}`, `{"header":{"X":"y"}}`} {
		nb, _ := pipeline.TypedFactory(NewHeader)(nil, pipeline.Deps{})
		if _, err := nb.Build(json.RawMessage(bad)); err == nil {
			t.Errorf("config %s accepted", bad)
		} else if strings.Contains(bad, "{{ .Subject\"") && !strings.Contains(err.Error(), "headers.X") {
			t.Errorf("template error does not name the header: %v", err)
		}
	}
}

func TestNoopMutatorForwardsRequestHeaders(t *testing.T) {
	b, _ := pipeline.TypedFactory(NewNoop)(nil, pipeline.Deps{})
	m, _ := b.Build(nil)
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("X-Trace", "1")
	s := pipeline.NewSession(r, r.URL, nil)
	if err := m.Mutate(r, s); err != nil || s.Header.Get("X-Trace") != "1" {
		t.Errorf("noop: %v %v", s.Header, err)
	}
}
