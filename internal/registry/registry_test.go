package registry

import (
	"reflect"
	"slices"
	"testing"

	"github.com/portcullis-proxy/portcullis/pipeline"
)

// The list builds into a catalog; every kind has handlers, every entry
// a config struct, and HandlerNames names each kind's block.
func TestHandlersMakeACatalog(t *testing.T) {
	cat, err := pipeline.NewCatalog(Handlers())
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range cat.Handlers() {
		if h.Config().Kind() != reflect.Struct {
			t.Errorf("%s %q: config type %v is not a struct", h.Kind(), h.Name(), h.Config())
		}
	}
	names := HandlerNames(cat)
	if len(names) != len(pipeline.Kinds()) {
		t.Errorf("HandlerNames has %d blocks, want one per kind", len(names))
	}
	for _, k := range pipeline.Kinds() {
		if len(cat.Names(k)) == 0 {
			t.Errorf("no %s is registered", k)
		}
		if !slices.Equal(names[k.ConfigKey()], cat.Names(k)) {
			t.Errorf("HandlerNames[%q] = %v, want %v", k.ConfigKey(), names[k.ConfigKey()], cat.Names(k))
		}
	}
}
