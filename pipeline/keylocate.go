package pipeline

import (
	"bytes"
	"encoding"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
)

// keyed turns err, encoding/json's refusal to decode raw into a value of
// type t, into an error that names the key. encoding/json says which field
// a wrong type is at (without list indexes), but not which key is unknown,
// nor where a type that decodes itself (a duration, a nested block) failed:
// the key is found by walking raw against t. An error no key can be found
// for is returned as it is.
func keyed(raw []byte, t reflect.Type, err error) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var generic any
	if dec.Decode(&generic) == nil {
		if path, cause := locate(generic, t, nil); cause != nil && (len(path) > 0 || isKeyError(cause)) {
			return keyError(path, cause)
		}
	}
	// Only encoding/json's own report, not one a nested UnmarshalJSON
	// returned: its Field would be relative to the nested block.
	if te, ok := err.(*json.UnmarshalTypeError); ok {
		var path []string
		if te.Field != "" {
			path = strings.Split(te.Field, ".")
		}
		return &KeyError{Path: path, Err: fmt.Errorf("expected %s, got %s", te.Type, te.Value)}
	}
	return err
}

// keyError is the error locate found at path.
func keyError(path []string, cause error) error {
	// A nested block that returned its own key error as it is: one path
	// from the top. One it wrapped in words of its own keeps them.
	switch c := cause.(type) {
	case *KeyError:
		return &KeyError{Path: append(path, c.Path...), Err: c.Err}
	case *UnknownKeyError:
		return &UnknownKeyError{Path: append(path, c.Path...)}
	}
	if cause == errUnknownKey {
		return &UnknownKeyError{Path: path}
	}
	return &KeyError{Path: path, Err: cause}
}

// isKeyError reports whether err is itself a key error: a value that
// decodes itself at the top and names no key is left as it is.
func isKeyError(err error) bool {
	switch err.(type) {
	case *KeyError, *UnknownKeyError:
		return true
	}
	return err == errUnknownKey
}

// errUnknownKey marks, inside locate, a key the type does not have.
var errUnknownKey = errors.New("unknown key")

var (
	jsonUnmarshaler = reflect.TypeFor[json.Unmarshaler]()
	textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// locate walks v (decoded with UseNumber) against t as encoding/json
// decodes it and returns the path of the first key, in sorted order at each
// level, that t does not have (cause errUnknownKey) or whose value does not
// decode (cause the decoding error); a nil cause when there is none.
func locate(v any, t reflect.Type, path []string) ([]string, error) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if v == nil {
		return nil, nil // null leaves any value as it is
	}
	if reflect.PointerTo(t).Implements(jsonUnmarshaler) || reflect.PointerTo(t).Implements(textUnmarshaler) {
		return decodeAlone(v, t, path)
	}
	switch t.Kind() {
	case reflect.Struct:
		m, ok := v.(map[string]any)
		if !ok {
			return decodeAlone(v, t, path)
		}
		fields := jsonFields(t, nil)
		for _, k := range sortedKeys(m) {
			ft, known := fields.lookup(k)
			p := append(slices.Clip(path), k)
			if !known {
				return p, errUnknownKey
			}
			if p, err := locate(m[k], ft, p); err != nil {
				return p, err
			}
		}
	case reflect.Map:
		m, ok := v.(map[string]any)
		if !ok {
			return decodeAlone(v, t, path)
		}
		for _, k := range sortedKeys(m) {
			if p, err := locate(m[k], t.Elem(), append(slices.Clip(path), k)); err != nil {
				return p, err
			}
		}
	case reflect.Slice, reflect.Array:
		items, ok := v.([]any)
		if !ok || t.Elem().Kind() == reflect.Uint8 {
			return decodeAlone(v, t, path) // []byte is a base64 string
		}
		for i, x := range items {
			if p, err := locate(x, t.Elem(), append(slices.Clip(path), strconv.Itoa(i))); err != nil {
				return p, err
			}
		}
	case reflect.Interface:
	default:
		return decodeAlone(v, t, path)
	}
	return nil, nil
}

// decodeAlone decodes v into a fresh value of type t and reports the
// failure at path.
func decodeAlone(v any, t reflect.Type, path []string) ([]string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, nil
	}
	if err := json.Unmarshal(b, reflect.New(t).Interface()); err != nil {
		// The key is path: encoding/json's own report needs no Field.
		if te, ok := err.(*json.UnmarshalTypeError); ok {
			err = fmt.Errorf("expected %s, got %s", te.Type, te.Value)
		}
		return path, err
	}
	return nil, nil
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// fieldSet is a struct's keys as encoding/json reads them.
type fieldSet []field

type field struct {
	name string
	typ  reflect.Type
}

// lookup finds key as encoding/json does: an exact name first, then one
// that differs only in case.
func (fs fieldSet) lookup(key string) (reflect.Type, bool) {
	for _, f := range fs {
		if f.name == key {
			return f.typ, true
		}
	}
	for _, f := range fs {
		if strings.EqualFold(f.name, key) {
			return f.typ, true
		}
	}
	return nil, false
}

// jsonFields lists t's keys: exported fields by their json tag or name,
// those of untagged embedded structs promoted (after t's own, so that the
// shallower field wins a name as in encoding/json), `json:"-"` left out.
// seen holds the embedded types already listed, so a type that embeds
// itself through a pointer ends.
func jsonFields(t reflect.Type, seen map[reflect.Type]bool) fieldSet {
	if seen[t] {
		return nil
	}
	if seen == nil {
		seen = map[reflect.Type]bool{}
	}
	seen[t] = true
	var own, promoted fieldSet
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		ft := f.Type
		for ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		if f.Anonymous && name == "" && ft.Kind() == reflect.Struct {
			promoted = append(promoted, jsonFields(ft, seen)...)
			continue
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		own = append(own, field{name: name, typ: f.Type})
	}
	return append(own, promoted...)
}
