package authenticators

import (
	"encoding/json"
	"errors"
	"net/http/httptest"
	"testing"

	"github.com/portcullis-proxy/portcullis/pipeline"
	"github.com/portcullis-proxy/portcullis/testsupport/handlertest"
)

func build(t *testing.T, f pipeline.Factory[pipeline.Authenticator], global, rule string) pipeline.Authenticator {
	t.Helper()
	b := handlertest.Enable(t, f, json.RawMessage(global), pipeline.Deps{})
	a := handlertest.Build(t, b, json.RawMessage(rule))
	return a
}

func TestSimpleAuthenticators(t *testing.T) {
	cases := []struct {
		name        string
		a           pipeline.Authenticator
		auth        string
		wantErr     error
		wantSubject string
		responsible bool
	}{
		{"anonymous default", build(t, pipeline.TypedFactory(NewAnonymous), "", ""), "", nil, "anonymous", true},
		{"anonymous global subject", build(t, pipeline.TypedFactory(NewAnonymous), `{"subject":"guest"}`, ""), "", nil, "guest", true},
		{"anonymous rule wins", build(t, pipeline.TypedFactory(NewAnonymous), `{"subject":"guest"}`, `{"subject":"visitor"}`), "", nil, "visitor", true},
		{"anonymous with credentials", build(t, pipeline.TypedFactory(NewAnonymous), "", ""), "Bearer x", pipeline.ErrNotResponsible, "", false},
		{"noop", build(t, pipeline.TypedFactory(NewNoop), "", ""), "Bearer x", nil, "", true},
		{"unauthorized", build(t, pipeline.TypedFactory(NewUnauthorized), "", ""), "", pipeline.ErrUnauthorized, "", true},
	}
	for _, tc := range cases {
		r := httptest.NewRequest("GET", "/", nil)
		if tc.auth != "" {
			r.Header.Set("Authorization", tc.auth)
		}
		s := pipeline.NewSession(r, r.URL, nil)
		err := tc.a.Authenticate(r, s)
		if tc.wantErr == nil && err != nil || tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
			t.Errorf("%s: error = %v, want %v", tc.name, err, tc.wantErr)
		}
		if s.Subject != tc.wantSubject {
			t.Errorf("%s: subject = %q, want %q", tc.name, s.Subject, tc.wantSubject)
		}
	}
	if _, err := pipeline.TypedFactory(NewAnonymous)(nil, pipeline.Deps{}); err != nil {
		t.Fatal(err)
	}
	b, _ := pipeline.TypedFactory(NewAnonymous)(nil, pipeline.Deps{})
	if _, err := b.Build(json.RawMessage(`{"subjct":"x"}`)); err == nil {
		t.Error("unknown key accepted")
	}
}
