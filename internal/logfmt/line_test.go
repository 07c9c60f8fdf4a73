package logfmt

import (
	"bytes"
	"math"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
)

// lineFormatters are the formatters whose AppendLine must write what the
// logrus formatter beside it writes for the same entry.
var lineFormatters = []struct {
	name   string
	line   LineFormatter
	logrus logrus.Formatter
}{
	{"text", &Text{}, &logrus.TextFormatter{DisableColors: true, FullTimestamp: true}},
	{"json", &JSON{}, &logrus.JSONFormatter{}},
}

// sameLine requires AppendLine of fields to be byte-equal to the logrus
// formatter's line for the entry holding the same fields, for each format.
func sameLine(t *testing.T, name string, at time.Time, level logrus.Level, msg string, fields []Field) {
	t.Helper()
	data := logrus.Fields{}
	for _, f := range fields {
		data[f.Key] = f.Value()
	}
	for _, lf := range lineFormatters {
		e := entry(msg, level, data)
		e.Time = at
		want, err := lf.logrus.Format(e)
		if err != nil {
			t.Fatalf("%s %s: logrus: %v", lf.name, name, err)
		}
		fs := append([]Field(nil), fields...)
		got := lf.line.AppendLine([]byte("prefix|"), at, level, msg, fs)
		if !bytes.Equal(got, append([]byte("prefix|"), want...)) {
			t.Errorf("%s %s:\n got %q\nwant %q", lf.name, name, got[len("prefix|"):], want)
		}
		// Format, the path of every other line, writes the same bytes.
		e = entry(msg, level, data)
		e.Time = at
		if f, err := lf.line.Format(e); err != nil || !bytes.Equal(f, want) {
			t.Errorf("%s %s: Format = %q, %v; want %q", lf.name, name, f, err, want)
		}
	}
}

// requestLine is the proxy's request line for an allowed request.
func requestLine() []Field {
	return []Field{
		String("method", "GET"), String("path", "/anon/items/42"), String("host", "127.0.0.1:4455"),
		String("rule", "anon"), String("decision", "allowed"), Int("status", 200),
		String("subject", "anonymous"), Float("latency_ms", 0.123),
	}
}

func TestAppendLineSameAsLogrus(t *testing.T) {
	utc := time.Date(2026, 12, 1, 11, 6, 0, 999999999, time.UTC)
	cases := []struct {
		name   string
		at     time.Time
		level  logrus.Level
		msg    string
		fields []Field
	}{
		{"request line", at, logrus.InfoLevel, "request", requestLine()},
		{"request line, UTC", utc, logrus.InfoLevel, "request", requestLine()},
		{"denied, with its reason and trace", at, logrus.InfoLevel, "decision", []Field{
			String("method", "POST"), String("path", "/api/x y"), String("host", "app.example"), String("rule", "api"),
			String("decision", "denied"), Int("status", 401), String("subject", ""), Float("latency_ms", 12.5),
			String("reason", `bearer token: "not active"`), String("authenticator", "bearer_token"),
			String("trace_id", "4bf92f3577b34da6a3ce929d0e0e4736"),
		}},
		{"upstream error", utc, logrus.InfoLevel, "request", []Field{
			String("method", "GET"), String("path", "/"), String("host", ""), String("rule", ""), String("decision", "error"),
			Int("status", 502), Float("latency_ms", 30000.001),
			String("upstream_error", "dial tcp 127.0.0.1:1: connect: connection refused"),
		}},
		{"odd values", at, logrus.InfoLevel, "request", []Field{
			String("ctl", "\x00\x01\b\f\n\r\t\x1f\x7f"), String("uni", "ünï €𝄞"), String("bad", "a\xffb\xc3"),
			String("html", "<script>&amp;</script>"), String("sep", "a\u2028b\u2029c"), String("back", `C:\path\"q"`),
			String("safe", "-._/@^+"), String("eq", "a=b"), String("sp", " "), String("", "empty key"),
		}},
		{"numbers", at, logrus.WarnLevel, "n", []Field{
			Int("zero", 0), Int("neg", -42), Int("big", math.MaxInt64), Int("small", math.MinInt64),
			Float("f0", 0), Float("neg0", math.Copysign(0, -1)), Float("tiny", 1e-7), Float("micro", 0.000001),
			Float("e21", 1e21), Float("e20", 1e20), Float("pi", math.Pi), Float("max", math.MaxFloat64),
			Float("min", math.SmallestNonzeroFloat64), Float("negexp", -2.5e-9),
		}},
		{"clashing keys", at, logrus.InfoLevel, "clash", []Field{
			String("time", "t"), String("msg", "m"), String("level", "l"), String("logrus_error", "x"), Int("fields", 1),
			String("fields.a", "a"), String("fields.z", "z"), String("a", "a"), String("z", "z"),
		}},
		{"no message", at, logrus.ErrorLevel, "", []Field{String("a", "b")}},
		{"odd message", at, logrus.InfoLevel, "<msg> & \"quotes\"\n", nil},
		{"unknown level", at, logrus.Level(42), "lvl", []Field{Int("a", 1)}},
	}
	for _, tc := range cases {
		sameLine(t, tc.name, tc.at, tc.level, tc.msg, tc.fields)
	}
}

// JSON has no NaN or infinity: logrus fails the line, AppendLine writes null.
func TestAppendLineNonFiniteFloat(t *testing.T) {
	got := (&JSON{}).AppendLine(nil, at, logrus.InfoLevel, "m", []Field{Float("nan", math.NaN()), Float("inf", math.Inf(-1))})
	want := `{"inf":null,"level":"info","msg":"m","nan":null,"time":"2026-11-23T17:04:05+01:00"}` + "\n"
	if string(got) != want {
		t.Errorf("got %q, want %q", got, want)
	}
	text := (&Text{}).AppendLine(nil, at, logrus.InfoLevel, "m", []Field{Float("nan", math.NaN()), Float("inf", math.Inf(1))})
	want = `time="2026-11-23T17:04:05+01:00" level=info msg=m inf=+Inf nan=NaN` + "\n"
	if string(text) != want {
		t.Errorf("text: got %q, want %q", text, want)
	}
}

// The request line is written without an allocation when dst has room.
func TestAppendLineAllocations(t *testing.T) {
	for _, lf := range lineFormatters {
		buf := make([]byte, 0, 1024)
		fs := requestLine()
		allocs := testing.AllocsPerRun(100, func() {
			buf = lf.line.AppendLine(buf[:0], at, logrus.InfoLevel, "request", fs)
		})
		if allocs != 0 {
			t.Errorf("%s: %.0f allocations per line, want 0", lf.name, allocs)
		}
	}
}

func FuzzAppendLineSameAsLogrus(f *testing.F) {
	f.Add("request", "path", "/anon/items/42", "subject", "", 0.123, int64(200), int64(0))
	f.Add("<&>", "\u2028", "\xff\x00", "time", "a b", 1e-7, int64(-1), int64(1<<40))
	f.Add("", "", "=", "msg", "\"", 1e21, int64(math.MaxInt64), int64(-(1 << 62)))
	f.Fuzz(func(t *testing.T, msg, k1, v1, k2, v2 string, fl float64, n int64, unix int64) {
		if math.IsNaN(fl) || math.IsInf(fl, 0) {
			t.Skip("logrus's JSONFormatter fails a line with a non-finite float")
		}
		keys := map[string]bool{}
		fields := []Field{String(k1, v1), Float(k1+"f", fl), Int(k1+"n", int(n)), String(k2, v2)}
		for _, f := range fields {
			w := f.Key
			if isFixed(w) {
				w = "fields." + w
			}
			if keys[w] {
				t.Skip("keys must be distinct as written")
			}
			keys[w] = true
		}
		when := time.Unix(unix%(1<<35), unix%1e9).In(time.FixedZone("Z", int(n%50000)))
		sameLine(t, "fuzz", when, logrus.InfoLevel, msg, fields)
	})
}

func BenchmarkAppendLine(b *testing.B) {
	data := logrus.Fields{}
	for _, f := range requestLine() {
		data[f.Key] = f.Value()
	}
	for _, lf := range lineFormatters {
		b.Run(lf.name+"/logrus", func(b *testing.B) {
			benchFormat(b, lf.logrus, entry("request", logrus.InfoLevel, data))
		})
		b.Run(lf.name+"/AppendLine", func(b *testing.B) {
			buf := make([]byte, 0, 1024)
			var fs [8]Field
			b.ReportAllocs()
			for b.Loop() {
				copy(fs[:], requestLine())
				buf = lf.line.AppendLine(buf[:0], time.Now(), logrus.InfoLevel, "request", fs[:])
			}
		})
	}
}
