package logfmt

import (
	"math"
	"strconv"
	"time"

	"github.com/sirupsen/logrus"
)

// Field is one key and value of a line written by [LineFormatter.AppendLine]:
// a string, an int or a float64, the types a request line is made of. Build
// it with [String], [Int] or [Float]; it holds its value without boxing it.
type Field struct {
	Key  string
	kind fieldKind
	str  string
	num  int64
	flt  float64
}

type fieldKind uint8

const (
	kindString fieldKind = iota
	kindInt
	kindFloat
)

// String is a string field.
func String(key, v string) Field { return Field{Key: key, kind: kindString, str: v} }

// Int is an int field.
func Int(key string, v int) Field { return Field{Key: key, kind: kindInt, num: int64(v)} }

// Float is a float64 field. JSON cannot hold NaN or ±Inf (logrus's
// JSONFormatter fails the whole line on one); [JSON.AppendLine] writes
// them as null.
func Float(key string, v float64) Field { return Field{Key: key, kind: kindFloat, flt: v} }

// Value returns the field's value as logrus would hold it in an entry's
// Data: a string, an int or a float64.
func (f Field) Value() any {
	switch f.kind {
	case kindInt:
		return int(f.num)
	case kindFloat:
		return f.flt
	}
	return f.str
}

// LineFormatter is a logrus.Formatter that also writes a line straight from
// its parts, without a logrus.Entry or a field map: AppendLine(dst, t,
// level, msg, fields) appends exactly the bytes Format writes for an entry
// with that Time, Level, Message and Data (each field's [Field.Value]
// under its Key), no caller and no error.
//
// fields must have distinct keys; they are written sorted by key (fields
// is not changed). A key
// that clashes with a fixed one (time, level, msg, logrus_error) is written
// as fields.<key>, as logrus does.
type LineFormatter interface {
	logrus.Formatter
	AppendLine(dst []byte, t time.Time, level logrus.Level, msg string, fields []Field) []byte
}

var (
	_ LineFormatter = (*JSON)(nil)
	_ LineFormatter = (*Text)(nil)
)

// Text is the server's text format: it formats entries as
// logrus.TextFormatter{DisableColors: true, FullTimestamp: true} does
// (key=value pairs, time, level and msg first, then the fields sorted by
// key, a value quoted as Go quotes strings when it holds anything but
// letters, digits and -._/@^+). Its zero value is ready to use and it is
// safe for concurrent use.
type Text struct{}

// textFormatter is the one logrus formatter Text writes like; Format hands
// entries to it. It is configured once and never changed.
var textFormatter = &logrus.TextFormatter{DisableColors: true, FullTimestamp: true}

// Format implements logrus.Formatter.
func (*Text) Format(e *logrus.Entry) ([]byte, error) { return textFormatter.Format(e) }

// AppendLine implements [LineFormatter].
func (*Text) AppendLine(dst []byte, t time.Time, level logrus.Level, msg string, fields []Field) []byte {
	// RFC 3339 holds a ':', so logrus quotes it; its characters are
	// printable ASCII that strconv.Quote leaves as they are.
	dst = append(dst, `time="`...)
	dst = t.AppendFormat(dst, time.RFC3339)
	dst = append(dst, '"')
	dst = append(dst, " level="...)
	dst = appendTextString(dst, level.String())
	if msg != "" {
		dst = append(dst, " msg="...)
		dst = appendTextString(dst, msg)
	}
	var o [maxFields]int
	for _, i := range fieldOrder(fields, &o) {
		f := &fields[i]
		dst = append(dst, ' ')
		dst = appendKey(dst, f.Key)
		dst = append(dst, '=')
		dst = f.appendValue(dst, appendTextString, appendTextFloat)
	}
	return append(dst, '\n')
}

// AppendLine implements [LineFormatter].
func (*JSON) AppendLine(dst []byte, t time.Time, level logrus.Level, msg string, fields []Field) []byte {
	var o [maxFields]int
	order := fieldOrder(fields, &o)
	// The fixed keys sort among the fields: "level" < "msg" < "time", and
	// no field is named like one of them (they become fields.<key>).
	fixed := [3]string{"level", "msg", "time"}
	next := 0
	dst = append(dst, '{')
	first := true
	for _, i := range order {
		f := &fields[i]
		key := f.Key
		if isFixed(key) {
			key = "fields." + key
		}
		for next < len(fixed) && fixed[next] < key {
			if !first {
				dst = append(dst, ',')
			}
			dst, first = appendJSONFixed(dst, fixed[next], t, level, msg), false
			next++
		}
		if !first {
			dst = append(dst, ',')
		}
		first = false
		dst = appendString(dst, key)
		dst = append(dst, ':')
		dst = f.appendValue(dst, appendString, appendJSONFloat)
	}
	for ; next < len(fixed); next++ {
		if !first {
			dst = append(dst, ',')
		}
		dst, first = appendJSONFixed(dst, fixed[next], t, level, msg), false
	}
	return append(dst, '}', '\n')
}

// appendValue writes f's value: a string with str, an int in decimal, a
// float with flt.
func (f *Field) appendValue(dst []byte, str func([]byte, string) []byte, flt func([]byte, float64) []byte) []byte {
	switch f.kind {
	case kindInt:
		return strconv.AppendInt(dst, f.num, 10)
	case kindFloat:
		return flt(dst, f.flt)
	}
	return str(dst, f.str)
}

// appendTextFloat writes v as TextFormatter writes a float64 (%g, shortest).
func appendTextFloat(dst []byte, v float64) []byte { return strconv.AppendFloat(dst, v, 'g', -1, 64) }

// appendJSONFloat writes v as encoding/json does, and NaN and ±Inf, which
// JSON cannot hold, as null.
func appendJSONFloat(dst []byte, v float64) []byte {
	if math.IsInf(v, 0) || math.IsNaN(v) {
		return append(dst, "null"...)
	}
	return appendFloat(dst, v)
}

// appendJSONFixed writes the fixed key k (level, msg or time) and its value.
func appendJSONFixed(dst []byte, k string, t time.Time, level logrus.Level, msg string) []byte {
	dst = appendString(dst, k)
	dst = append(dst, ':')
	switch k {
	case "level":
		return appendString(dst, level.String())
	case "msg":
		return appendString(dst, msg)
	}
	// RFC 3339 without fractions is digits, '-', ':', 'T', 'Z' and '+':
	// nothing a JSON string escapes.
	dst = append(dst, '"')
	dst = t.AppendFormat(dst, time.RFC3339)
	return append(dst, '"')
}

// isFixed reports whether a field named k clashes with a key logrus
// writes itself.
func isFixed(k string) bool {
	switch k {
	case "time", "level", "msg", "logrus_error":
		return true
	}
	return false
}

// appendKey writes a text line's key: as it is, renamed when it clashes.
func appendKey(dst []byte, k string) []byte {
	if isFixed(k) {
		dst = append(dst, "fields."...)
	}
	return append(dst, k...)
}

// fieldOrder returns the indexes of fs in the order of the keys they are
// written under (a clashing key sorts as fields.<key>): an insertion sort
// of indexes, for the dozen fields of a line, into o when they fit (the
// fields themselves are not moved).
func fieldOrder(fs []Field, o *[maxFields]int) []int {
	var idx []int
	if len(fs) <= len(o) {
		idx = o[:len(fs)]
	} else {
		idx = make([]int, len(fs))
	}
	for i := range idx {
		idx[i] = i
	}
	for i := 1; i < len(idx); i++ {
		for j := i; j > 0 && keyLess(fs[idx[j]].Key, fs[idx[j-1]].Key); j-- {
			idx[j], idx[j-1] = idx[j-1], idx[j]
		}
	}
	return idx
}

func keyLess(a, b string) bool {
	fa, fb := isFixed(a), isFixed(b)
	if !fa && !fb {
		return a < b
	}
	return writtenKey(a) < writtenKey(b)
}

func writtenKey(k string) string {
	if isFixed(k) {
		return "fields." + k
	}
	return k
}

// appendTextString writes s as TextFormatter writes a string value: as it
// is when every byte is safe, "" never quoted, otherwise Go-quoted.
func appendTextString(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if !safeTextByte(s[i]) {
			return strconv.AppendQuote(dst, s)
		}
	}
	return append(dst, s...)
}

// safeTextByte is logrus's isSafeByte: the bytes a text value may hold
// unquoted.
func safeTextByte(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	switch c {
	case '-', '.', '_', '/', '@', '^', '+':
		return true
	}
	return false
}
