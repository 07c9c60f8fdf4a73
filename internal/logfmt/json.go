// Package logfmt holds the process's logging over logrus: a JSON log
// formatter that writes exactly the bytes logrus.JSONFormatter{} writes,
// without encoding/json's reflection and map sorting for the field types
// log lines are made of; [Text], the server's text format; [LineFormatter],
// which both implement, writing a line straight from its fields (the
// request line, without a logrus entry or a field map); and [Slog], the
// *slog.Logger that hands logrus to the handlers through pipeline.Deps.
//
// With `log.format: json`, logrus's formatter was a third of the CPU of a
// decision (one line per request); this one writes the same line for a
// fraction of it. An entry it cannot prove it writes identically — a caller,
// a field of another type, a field named like a fixed key, a float that
// JSON cannot hold — goes to logrus's own formatter.
package logfmt

import (
	"bytes"
	"errors"
	"math"
	"reflect"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/sirupsen/logrus"
)

// JSON formats entries as logrus.JSONFormatter with its zero value does:
// one JSON object per line, keys sorted, time in RFC 3339, HTML characters
// escaped. Its zero value is ready to use and it is safe for concurrent use.
type JSON struct {
	fallback logrus.JSONFormatter
}

var _ logrus.Formatter = (*JSON)(nil)

// maxFields bounds the entries formatted here (the keys are sorted on the
// stack).
const maxFields = 32

// errField reads logrus.Entry's unexported err, which JSONFormatter writes
// as "logrus_error"; an entry that has one goes to the fallback.
var errField = func() []int {
	f, ok := reflect.TypeOf(logrus.Entry{}).FieldByName("err")
	if !ok || f.Type.Kind() != reflect.String {
		return nil
	}
	return f.Index
}()

// Format implements logrus.Formatter.
func (f *JSON) Format(e *logrus.Entry) ([]byte, error) {
	if !f.simple(e) {
		return f.fallback.Format(e)
	}
	var keysBuf [maxFields + 3]string
	keys := append(keysBuf[:0], "level", "msg", "time")
	for k := range e.Data {
		keys = append(keys, k)
	}
	slices.Sort(keys)

	b := e.Buffer
	if b == nil {
		b = new(bytes.Buffer)
	}
	out := b.AvailableBuffer()
	out = append(out, '{')
	for i, k := range keys {
		if i > 0 {
			out = append(out, ',')
		}
		out = appendString(out, k)
		out = append(out, ':')
		switch k {
		case "level":
			out = appendString(out, e.Level.String())
		case "msg":
			out = appendString(out, e.Message)
		case "time":
			out = appendString(out, e.Time.Format(time.RFC3339))
		default:
			out = appendValue(out, e.Data[k])
		}
	}
	out = append(out, '}', '\n')
	b.Write(out)
	return b.Bytes(), nil
}

// simple reports whether every part of e is written here exactly as
// logrus.JSONFormatter writes it.
func (f *JSON) simple(e *logrus.Entry) bool {
	if e.Caller != nil || len(e.Data) > maxFields || errField == nil {
		return false
	}
	if reflect.ValueOf(e).Elem().FieldByIndex(errField).String() != "" {
		return false
	}
	for k, v := range e.Data {
		switch k {
		case "level", "msg", "time", "logrus_error":
			// JSONFormatter renames these to "fields.<key>".
			return false
		}
		if !simpleValue(v) {
			return false
		}
	}
	return true
}

// simpleValue lists the types appendValue writes as encoding/json does.
func simpleValue(v any) bool {
	switch v := v.(type) {
	case nil, string, bool, int, int8, int16, int32, int64,
		uint, uint8, uint16, uint32, uint64, time.Duration:
		return true
	case float64:
		return !math.IsInf(v, 0) && !math.IsNaN(v)
	case error:
		// Written as its Error() text, as JSONFormatter does; a nil
		// pointer inside the interface would panic there as well, so it
		// is left to it.
		return !isNilPointer(v)
	}
	return false
}

func isNilPointer(v any) bool {
	rv := reflect.ValueOf(v)
	return rv.Kind() == reflect.Pointer && rv.IsNil()
}

// appendValue writes a value simpleValue accepted.
func appendValue(out []byte, v any) []byte {
	// error first: JSONFormatter turns any error into its text.
	if err, ok := v.(error); ok {
		return appendString(out, err.Error())
	}
	switch v := v.(type) {
	case nil:
		return append(out, "null"...)
	case string:
		return appendString(out, v)
	case bool:
		return strconv.AppendBool(out, v)
	case int, int8, int16, int32, int64, time.Duration:
		// One case a signedness: reflect reads whichever integer it is
		// without an allocation, and encoding/json writes them all alike.
		return strconv.AppendInt(out, reflect.ValueOf(v).Int(), 10)
	case uint, uint8, uint16, uint32, uint64:
		return strconv.AppendUint(out, reflect.ValueOf(v).Uint(), 10)
	case float64:
		return appendFloat(out, v)
	}
	panic(errors.New("logfmt: appendValue called with a value simpleValue refused"))
}

// appendFloat writes f as encoding/json writes a float64: like %g with
// ES6's exponent cut-offs, and e-09 shortened to e-9.
func appendFloat(out []byte, f float64) []byte {
	abs := math.Abs(f)
	format := byte('f')
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	out = strconv.AppendFloat(out, f, format, -1, 64)
	if format == 'e' {
		n := len(out)
		if n >= 4 && out[n-4] == 'e' && out[n-3] == '-' && out[n-2] == '0' {
			out[n-2] = out[n-1]
			out = out[:n-1]
		}
	}
	return out
}

const hex = "0123456789abcdef"

// appendString writes s as a JSON string the way encoding/json does with
// HTML escaping on: <, > and & as \u003c \u003e \u0026, control characters
// as short or \u00XX escapes, invalid UTF-8 as \ufffd, and U+2028/U+2029
// escaped.
func appendString(out []byte, s string) []byte {
	out = append(out, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			out = append(out, s[start:i]...)
			switch c {
			case '\\', '"':
				out = append(out, '\\', c)
			case '\b':
				out = append(out, '\\', 'b')
			case '\f':
				out = append(out, '\\', 'f')
			case '\n':
				out = append(out, '\\', 'n')
			case '\r':
				out = append(out, '\\', 'r')
			case '\t':
				out = append(out, '\\', 't')
			default:
				out = append(out, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			out = append(out, s[start:i]...)
			out = append(out, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			out = append(out, s[start:i]...)
			out = append(out, '\\', 'u', '2', '0', '2', hex[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	out = append(out, s[start:]...)
	return append(out, '"')
}
