package config

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/go-viper/mapstructure/v2"
	"gopkg.in/yaml.v3"

	"github.com/portcullis-proxy/portcullis/internal/yamlpos"
	"github.com/portcullis-proxy/portcullis/pipeline"
)

// KeyError is a configuration value that did not decode or validate. Path
// names its key (["serve", "proxy", "port"]; a handler's name and a list
// index are steps too). File is the configuration file ("" for none) and
// Line the line the key is written on in it (0 when it is not: a default,
// or a value from the environment). Find it with errors.As.
type KeyError struct {
	File string
	Line int
	Path []string
	Err  error
}

// Error reads "file:line: 'serve.proxy.port' what is wrong" ("config: …"
// without a file).
func (e *KeyError) Error() string {
	msg := "'" + pipeline.FormatPath(e.Path) + "' " + e.Err.Error()
	switch {
	case e.File == "":
		return "config: " + msg
	case e.Line > 0:
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, msg)
	default:
		return e.File + ": " + msg
	}
}

// Unwrap returns Err.
func (e *KeyError) Unwrap() error { return e.Err }

// locator places errors about keys in the configuration being loaded.
type locator struct {
	file string
	doc  *yaml.Node
	// fromEnv holds the dotted keys the environment set: a value that
	// came from there is not the one written in the file.
	fromEnv map[string]any
}

// keyError is a *KeyError about path, with its line.
func (l locator) keyError(path []string, err error) *KeyError {
	ke := &KeyError{File: l.file, Path: path, Err: err}
	if _, set := l.fromEnv[strings.Join(path, ".")]; !set {
		ke.Line = yamlpos.Line(l.doc, path...)
	}
	return ke
}

// block turns an error of [pipeline.DecodeStrict] or of a block's own
// validation (a [*pipeline.KeyError] naming a key relative to the block)
// into a *KeyError: the key path it names below the block at prefix, or
// the block itself.
func (l locator) block(prefix []string, err error) error {
	var ke *pipeline.KeyError
	var ue *pipeline.UnknownKeyError
	switch {
	case errors.As(err, &ke):
		return l.keyError(append(slices.Clip(prefix), ke.Path...), ke.Err)
	case errors.As(err, &ue):
		return l.keyError(append(slices.Clip(prefix), ue.Path...), ue)
	default:
		return l.keyError(prefix, err)
	}
}

// decoding turns mapstructure's report of the values that did not decode
// into one *KeyError per key, in the order they are written (keys not in
// the file last, by path); several are joined, one per line.
func (l locator) decoding(err error) error {
	var failed []*mapstructure.DecodeError
	leaves(err, &failed)
	if len(failed) == 0 {
		if l.file == "" {
			return fmt.Errorf("config: %w", err)
		}
		return fmt.Errorf("%s: %w", l.file, err)
	}
	errs := make([]*KeyError, 0, len(failed))
	for _, d := range failed {
		errs = append(errs, l.keyError(fieldPath(d.Name()), d.Unwrap()))
	}
	slices.SortFunc(errs, func(a, b *KeyError) int {
		if (a.Line == 0) != (b.Line == 0) {
			return cmp.Compare(b.Line, a.Line) // unwritten keys last
		}
		return cmp.Or(cmp.Compare(a.Line, b.Line), strings.Compare(pipeline.FormatPath(a.Path), pipeline.FormatPath(b.Path)))
	})
	if len(errs) == 1 {
		return errs[0]
	}
	joined := make([]error, len(errs))
	for i, e := range errs {
		joined[i] = e
	}
	return errors.Join(joined...)
}

// leaves collects the innermost *mapstructure.DecodeError of each value
// that failed: mapstructure nests them (a struct's error holds its
// fields') and joins siblings.
func leaves(err error, out *[]*mapstructure.DecodeError) {
	var d *mapstructure.DecodeError
	if de, ok := err.(*mapstructure.DecodeError); ok {
		d = de
	}
	before := len(*out)
	switch u := err.(type) {
	case interface{ Unwrap() []error }:
		for _, e := range u.Unwrap() {
			leaves(e, out)
		}
	case interface{ Unwrap() error }:
		if inner := u.Unwrap(); inner != nil {
			leaves(inner, out)
		}
	}
	if d != nil && len(*out) == before {
		*out = append(*out, d)
	}
}

// fieldPath splits a mapstructure field name — the key path it decoded,
// as in serve.proxy.port, authenticators[jwt].enabled or
// access_rules.repositories[1] — into its steps.
func fieldPath(name string) []string {
	var path []string
	for name != "" {
		switch name[0] {
		case '.':
			name = name[1:]
		case '[':
			end := strings.IndexByte(name, ']')
			if end < 0 {
				return append(path, name[1:])
			}
			path, name = append(path, name[1:end]), name[end+1:]
		default:
			end := strings.IndexAny(name, ".[")
			if end < 0 {
				end = len(name)
			}
			path, name = append(path, name[:end]), name[end:]
		}
	}
	return path
}
