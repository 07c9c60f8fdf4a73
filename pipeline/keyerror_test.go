package pipeline

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// inner decodes itself strictly, as a handler's nested block does, and
// returns DecodeStrict's error as it is.
type inner struct {
	Delay Duration `json:"delay"`
}

func (in *inner) UnmarshalJSON(b []byte) error {
	type plain inner
	return DecodeStrict(b, (*plain)(in))
}

// wrappedInner is a nested block that words its errors (as fetch.Retry
// does).
type wrappedInner struct {
	Delay Duration `json:"delay"`
}

func (w *wrappedInner) UnmarshalJSON(b []byte) error {
	type plain wrappedInner
	if err := DecodeStrict(b, (*plain)(w)); err != nil {
		return fmt.Errorf("retry: %w", err)
	}
	return nil
}

type Embedded struct {
	Shared string `json:"shared"`
}

type outerConfig struct {
	Embedded
	Name    string            `json:"name"`
	Items   []item            `json:"items"`
	ByName  map[string]item   `json:"by_name"`
	Inner   inner             `json:"inner"`
	Retry   *wrappedInner     `json:"retry"`
	Free    json.RawMessage   `json:"free"`
	Any     any               `json:"any"`
	Hidden  string            `json:"-"`
	Labels  map[string]string `json:"labels"`
	Untaged int
}

type item struct {
	Handler string   `json:"handler"`
	TTL     Duration `json:"ttl"`
}

// TestDecodeStrictNamesTheKey: every refusal names its key path from the
// top of the document, list indexes and map keys included, as a typed
// error; the messages keep their wording.
func TestDecodeStrictNamesTheKey(t *testing.T) {
	cases := []struct {
		doc     string
		path    []string
		unknown bool
		msg     string
	}{
		{`{"nmae":"x"}`, []string{"nmae"}, true, `json: unknown field "nmae"`},
		{`{"items":[{"handler":"a"},{"handler":"b","hndler":"c"}]}`, []string{"items", "1", "hndler"}, true, `json: unknown field "hndler"`},
		{`{"by_name":{"a":{"ttl":"1s","x":1}}}`, []string{"by_name", "a", "x"}, true, `json: unknown field "x"`},
		{`{"Hidden":"x"}`, []string{"Hidden"}, true, `json: unknown field "Hidden"`},
		{`{"name":1}`, []string{"name"}, false, `key "name": expected string, got number`},
		{`{"items":[{"handler":"a"},{"handler":[1]}]}`, []string{"items", "1", "handler"}, false, `key "items[1].handler": expected string, got array`},
		{`{"items":{"handler":"a"}}`, []string{"items"}, false, `key "items": expected []pipeline.item, got object`},
		{`{"items":[{"ttl":"soon"}]}`, []string{"items", "0", "ttl"}, false, `key "items[0].ttl": expected a duration such as "5s", got "soon"`},
		{`{"labels":{"a":1}}`, []string{"labels", "a"}, false, `key "labels.a": expected string, got number`},
		// A nested block's own key error joins the path from the top.
		{`{"inner":{"dlay":"1s"}}`, []string{"inner", "dlay"}, true, `json: unknown field "dlay"`},
		{`{"inner":{"delay":true}}`, []string{"inner", "delay"}, false, `key "inner.delay": expected a duration such as "5s", got true`},
		// One that adds words of its own keeps them, under its key.
		{`{"retry":{"dlay":"1s"}}`, []string{"retry"}, true, `key "retry": retry: json: unknown field "dlay"`},
		{`3`, nil, false, `key "(top level)": expected pipeline.outerConfig, got number`},
	}
	for _, tc := range cases {
		var c outerConfig
		err := DecodeStrict(json.RawMessage(tc.doc), &c)
		if err == nil || err.Error() != tc.msg {
			t.Errorf("DecodeStrict(%s) = %v, want %q", tc.doc, err, tc.msg)
			continue
		}
		path, ok := KeyPath(fmt.Errorf("wrapped: %w", err))
		if !ok || !reflect.DeepEqual(path, tc.path) {
			t.Errorf("DecodeStrict(%s): KeyPath = %q, %v; want %q", tc.doc, path, ok, tc.path)
		}
		var ue *UnknownKeyError
		if errors.As(err, &ue) != tc.unknown {
			t.Errorf("DecodeStrict(%s) = %v: an UnknownKeyError in its chain is %v, want %v", tc.doc, err, !tc.unknown, tc.unknown)
		}
	}
}

// TestDecodeStrictAcceptsWhatEncodingJSONAccepts: keys encoding/json
// reads (other case, promoted from an embedded struct, an untagged field,
// free-form values) are never reported.
func TestDecodeStrictAcceptsWhatEncodingJSONAccepts(t *testing.T) {
	doc := `{"NAME":"n","shared":"s","Untaged":1,"free":{"x":[1]},"any":{"y":2},"inner":{"delay":"1s"},"retry":{"delay":"2s"},"items":[{"Handler":"h"}],"labels":{"k":"v"}}`
	var c outerConfig
	if err := DecodeStrict(json.RawMessage(doc), &c); err != nil {
		t.Fatalf("DecodeStrict = %v", err)
	}
	if c.Name != "n" || c.Shared != "s" || c.Untaged != 1 || c.Items[0].Handler != "h" || c.Retry.Delay.String() != "2s" {
		t.Errorf("decoded %+v", c)
	}
}

// selfDecoding decodes itself at the top of the document.
type selfDecoding struct{}

func (*selfDecoding) UnmarshalJSON([]byte) error { return errors.New("not like this") }

// TestDecodeStrictTopLevelErrorUnchanged: a type that decodes itself and
// fails names no key; its error is returned as it is.
func TestDecodeStrictTopLevelErrorUnchanged(t *testing.T) {
	err := DecodeStrict(json.RawMessage(`{"a":1}`), &selfDecoding{})
	if err == nil || err.Error() != "not like this" {
		t.Errorf("DecodeStrict = %v, want the type's own error", err)
	}
	if _, ok := KeyPath(err); ok {
		t.Errorf("KeyPath(%v) found a key", err)
	}
}

// selfEmbedding embeds itself: listing its keys must end.
type selfEmbedding struct {
	*selfEmbedding
	Name string `json:"name"`
}

func TestDecodeStrictSelfEmbeddingType(t *testing.T) {
	var v selfEmbedding
	err := DecodeStrict(json.RawMessage(`{"nme":"x"}`), &v)
	if path, ok := KeyPath(err); !ok || strings.Join(path, ".") != "nme" {
		t.Errorf("DecodeStrict = %v, want the unknown key nme", err)
	}
}

func TestKeyPathWithoutKey(t *testing.T) {
	for _, err := range []error{nil, errors.New("plain"), fmt.Errorf("x: %w", errors.New("y"))} {
		if path, ok := KeyPath(err); ok {
			t.Errorf("KeyPath(%v) = %q, true; want none", err, path)
		}
	}
	joined := errors.Join(errors.New("first"), &KeyError{Path: []string{"b"}, Err: errors.New("bad")}, &UnknownKeyError{Path: []string{"c"}})
	if path, ok := KeyPath(joined); !ok || strings.Join(path, ".") != "b" {
		t.Errorf("KeyPath(joined) = %q, %v; want the first key error's", path, ok)
	}
}

func TestFormatPath(t *testing.T) {
	for _, tc := range []struct {
		path []string
		want string
	}{
		{nil, ""},
		{[]string{"serve", "proxy", "port"}, "serve.proxy.port"},
		{[]string{"access_rules", "repositories", "1"}, "access_rules.repositories[1]"},
		{[]string{"0", "id"}, "[0].id"},
		{[]string{"authenticators", "jwt", "config"}, "authenticators.jwt.config"},
	} {
		if got := FormatPath(tc.path); got != tc.want {
			t.Errorf("FormatPath(%q) = %q, want %q", tc.path, got, tc.want)
		}
	}
}
