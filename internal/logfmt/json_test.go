package logfmt

import (
	"bytes"
	"errors"
	"io"
	"math"
	"net/url"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
)

var at = time.Date(2026, 11, 23, 17, 4, 5, 123456789, time.FixedZone("X", 3600))

func entry(msg string, level logrus.Level, data logrus.Fields) *logrus.Entry {
	l := logrus.New()
	l.Out = io.Discard
	e := logrus.NewEntry(l).WithFields(data)
	e.Time, e.Level, e.Message = at, level, msg
	return e
}

// same formats e with both formatters, with and without a buffer, and
// requires the same bytes (or the same failure).
func same(t *testing.T, name string, e *logrus.Entry) {
	t.Helper()
	for _, withBuffer := range []bool{false, true} {
		a, b := *e, *e
		if withBuffer {
			a.Buffer, b.Buffer = new(bytes.Buffer), new(bytes.Buffer)
		}
		want, wantErr := (&logrus.JSONFormatter{}).Format(&a)
		got, gotErr := (&JSON{}).Format(&b)
		if (gotErr != nil) != (wantErr != nil) || !bytes.Equal(got, want) {
			t.Errorf("%s (buffer %v):\n got %q, %v\nwant %q, %v", name, withBuffer, got, gotErr, want, wantErr)
		}
	}
}

type codeError struct{ code int }

func (c *codeError) Error() string { return "code " + string(rune('0'+c.code)) }

func TestJSONSameAsLogrus(t *testing.T) {
	var nilErr *codeError
	cases := []struct {
		name string
		e    *logrus.Entry
	}{
		{"request line", entry("request", logrus.InfoLevel, logrus.Fields{
			"method": "GET", "path": "/anon/items/42", "host": "127.0.0.1:4455", "rule": "anon",
			"decision": "allowed", "status": 200, "subject": "anonymous", "latency_ms": 0.123,
		})},
		{"no fields", entry("", logrus.WarnLevel, nil)},
		{"every simple type", entry("types", logrus.DebugLevel, logrus.Fields{
			"s": "x", "b": true, "i": -1, "i8": int8(-8), "i16": int16(16), "i32": int32(-32), "i64": int64(math.MinInt64),
			"u": uint(1), "u8": uint8(255), "u16": uint16(16), "u32": uint32(32), "u64": uint64(math.MaxUint64),
			"d": 1500 * time.Millisecond, "nil": nil, "err": errors.New("boom <b>"), "cerr": &codeError{7},
		})},
		{"floats", entry("floats", logrus.InfoLevel, logrus.Fields{
			"zero": 0.0, "neg0": math.Copysign(0, -1), "tiny": 1e-7, "small": 0.000001, "big": 1e21, "below": 1e20,
			"pi": math.Pi, "max": math.MaxFloat64, "min": math.SmallestNonzeroFloat64, "neg": -2.5e-9,
		})},
		{"strings to escape", entry("<msg> & \"quotes\"\n", logrus.ErrorLevel, logrus.Fields{
			"html": "<script>&amp;</script>", "ctl": "\x00\x01\b\f\n\r\t\x1f\x7f", "uni": "ünï €𝄞", "bad": "a\xffb\xc3",
			"sep": "a\u2028b\u2029c", "back": `C:\path\"q"`, "": "empty key", "k<&>": "key escaped",
		})},
		{"clashing keys", entry("clash", logrus.InfoLevel, logrus.Fields{"time": "t", "msg": "m", "level": "l", "other": 1})},
		{"logrus_error key", entry("clash", logrus.InfoLevel, logrus.Fields{"logrus_error": "x"})},
		{"other types fall back", entry("other", logrus.InfoLevel, logrus.Fields{
			"bytes": []byte("abc"), "f32": float32(1.5), "url": &url.URL{Scheme: "http", Host: "h"}, "map": map[string]int{"b": 2, "a": 1},
			"time": "clash too",
		})},
		{"a stringer falls back", entry("stringer", logrus.InfoLevel, logrus.Fields{"level2": logrus.InfoLevel})},
		{"unencodable float", entry("nan", logrus.InfoLevel, logrus.Fields{"nan": math.NaN()})},
		{"unknown level", entry("lvl", logrus.Level(42), logrus.Fields{"a": 1})},
		{"a func field sets logrus_error", entry("func", logrus.InfoLevel, logrus.Fields{"f": func() {}, "a": "b"})},
	}
	for _, tc := range cases {
		same(t, tc.name, tc.e)
	}

	// A nil pointer in an error field makes logrus panic in Error(); ours
	// leaves such an entry to logrus, so it panics the same way.
	e := entry("nilerr", logrus.InfoLevel, logrus.Fields{"e": error(nilErr)})
	for name, f := range map[string]logrus.Formatter{"logrus": &logrus.JSONFormatter{}, "logfmt": &JSON{}} {
		if !panics(func() { _, _ = f.Format(e) }) {
			t.Errorf("%s did not panic on a nil error pointer", name)
		}
	}
}

func panics(f func()) (did bool) {
	defer func() { did = recover() != nil }()
	f()
	return false
}

// The fast path is taken for the request line: it must not allocate
// beyond the buffer it is given.
func TestJSONFastPathAllocations(t *testing.T) {
	e := entry("request", logrus.InfoLevel, logrus.Fields{
		"method": "GET", "path": "/anon/items/42", "host": "127.0.0.1:4455", "rule": "anon",
		"decision": "allowed", "status": 200, "subject": "anonymous", "latency_ms": 0.123,
	})
	e.Buffer = new(bytes.Buffer)
	f := &JSON{}
	allocs := testing.AllocsPerRun(100, func() {
		e.Buffer.Reset()
		if _, err := f.Format(e); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 1 {
		t.Errorf("%.0f allocations per request line, want at most 1 (the time)", allocs)
	}
}

func FuzzJSONSameAsLogrus(f *testing.F) {
	f.Add("msg", "key", "value", 1.5, int64(3))
	f.Add("<&>", "\u2028", "\xff\x00", 1e-7, int64(-1))
	f.Fuzz(func(t *testing.T, msg, key, value string, fl float64, n int64) {
		data := logrus.Fields{key: value, key + "f": fl, key + "n": n}
		same(t, "fuzz", entry(msg, logrus.InfoLevel, data))
	})
}

func BenchmarkJSON(b *testing.B) {
	e := entry("request", logrus.InfoLevel, logrus.Fields{
		"method": "GET", "path": "/anon/items/42", "host": "127.0.0.1:4455", "rule": "anon",
		"decision": "allowed", "status": 200, "subject": "anonymous", "latency_ms": 0.123,
	})
	for _, tc := range []struct {
		name string
		f    logrus.Formatter
	}{{"logrus", &logrus.JSONFormatter{}}, {"logfmt", &JSON{}}} {
		b.Run(tc.name, func(b *testing.B) { benchFormat(b, tc.f, e) })
	}
}

// benchFormat measures f formatting e into e's own buffer, reset before
// each entry as logrus does for every line it writes.
func benchFormat(b *testing.B, f logrus.Formatter, e *logrus.Entry) {
	e.Buffer = new(bytes.Buffer)
	b.ReportAllocs()
	for b.Loop() {
		e.Buffer.Reset()
		if _, err := f.Format(e); err != nil {
			b.Fatal(err)
		}
	}
}
