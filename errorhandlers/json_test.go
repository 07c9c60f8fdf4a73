package errorhandlers

import (
	"encoding/json"
	"errors"
	"net/http/httptest"
	"testing"

	"github.com/portcullis-proxy/portcullis/pipeline"
)

func TestJSONErrorHandler(t *testing.T) {
	b, err := pipeline.TypedFactory(NewJSON)(nil, pipeline.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	for _, verbose := range []bool{false, true} {
		cfg, _ := json.Marshal(map[string]any{"verbose": verbose, "when": []map[string]any{{"error": []string{"forbidden"}}}})
		h, err := b.Build(cfg)
		if err != nil {
			t.Fatal(err)
		}
		r := httptest.NewRequest("GET", "/", nil)
		if h.Matches(r, pipeline.Unauthorized("x", nil)) {
			t.Error("when: matched an error it does not list")
		}
		e := pipeline.Forbidden("Access is forbidden", errors.New("policy p1 denies"))
		if !h.Matches(r, e) {
			t.Fatal("when: did not match a listed error")
		}
		w := httptest.NewRecorder()
		h.HandleError(w, r, e)
		var body pipeline.ErrorBody
		if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
			t.Fatal(err)
		}
		if w.Code != 403 || body.Error.Code != 403 || body.Error.Status != "Forbidden" || body.Error.Message != "Access is forbidden" {
			t.Errorf("verbose=%v: %d %+v", verbose, w.Code, body)
		}
		if (body.Error.Reason != "") != verbose {
			t.Errorf("verbose=%v: reason %q", verbose, body.Error.Reason)
		}
	}
}
