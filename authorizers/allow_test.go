package authorizers

import (
	"errors"
	"net/http/httptest"
	"testing"

	"github.com/portcullis-proxy/portcullis/pipeline"
	"github.com/portcullis-proxy/portcullis/testsupport/handlertest"
)

func TestAllowAndDeny(t *testing.T) {
	r := httptest.NewRequest("GET", "/", nil)
	s := pipeline.NewSession(r, r.URL, nil)
	for name, f := range map[string]pipeline.Factory[pipeline.Authorizer]{"allow": pipeline.TypedFactory(NewAllow), "deny": pipeline.TypedFactory(NewDeny)} {
		b := handlertest.Enable(t, f, nil, pipeline.Deps{})
		a := handlertest.Build(t, b, nil)
		err := a.Authorize(r, s)
		switch name {
		case "allow":
			if err != nil {
				t.Errorf("allow: %v", err)
			}
		case "deny":
			if !errors.Is(err, pipeline.ErrForbidden) {
				t.Errorf("deny: %v, want 403", err)
			}
		}
		if _, err := b.Build([]byte(`{"x":1}`)); err == nil {
			t.Errorf("%s: unknown key accepted", name)
		}
	}
}
