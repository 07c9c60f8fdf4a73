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
		cfg, _ := json.Marshal(map[string]any{"verbose": verbose})
		h, err := b.Build(cfg)
		if err != nil {
			t.Fatal(err)
		}
		r := httptest.NewRequest("GET", "/", nil)
		e := pipeline.Forbidden("Access is forbidden", errors.New("policy p1 denies"))
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
