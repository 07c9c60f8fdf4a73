package proxy_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"

	"github.com/portcullis-proxy/portcullis/internal/logfmt"
	"github.com/portcullis-proxy/portcullis/proxy"
	"github.com/portcullis-proxy/portcullis/rules"
)

// The request line is written at info level, by the proxy and by the
// decision API alike, whether the handler was given a Logger or an Entry;
// above info nothing is written.
func TestRequestLogFollowsLevel(t *testing.T) {
	up := echoUpstream(t)
	set := ruleSet(t, withUpstream(benchRule, up.URL))
	for _, tc := range []struct {
		name  string
		level logrus.Level
		entry bool
		want  bool
	}{
		{"logger at info", logrus.InfoLevel, false, true},
		{"entry at debug", logrus.DebugLevel, true, true},
		{"logger at warn", logrus.WarnLevel, false, false},
		{"entry at error", logrus.ErrorLevel, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out lockedBuffer
			l := logTo(&out)
			l.SetLevel(tc.level)
			var fl logrus.FieldLogger = l
			if tc.entry {
				fl = l.WithField("component", "test")
			}
			front := serve(t, proxy.NewHandler(proxy.HandlerOptions{DecisionOptions: logged(set, fl)}))
			api := serve(t, proxy.NewAPI(proxy.APIOptions{DecisionOptions: logged(set, fl)}))
			for _, u := range []string{front.URL + "/anon/items/1", api.URL + "/decisions/anon/items/1"} {
				res, err := http.Get(u)
				if err != nil {
					t.Fatal(err)
				}
				res.Body.Close()
				if res.StatusCode != http.StatusOK {
					t.Fatalf("%s: status %d", u, res.StatusCode)
				}
			}
			got := out.String()
			for _, msg := range []string{"msg=request", "msg=decision"} {
				if has := strings.Contains(got, msg) && strings.Contains(got, "rule=anon"); has != tc.want {
					t.Errorf("%s logged = %v, want %v; log:\n%s", msg, has, tc.want, got)
				}
			}
		})
	}
}

// linePair is one front end twice: once logging as the server does (its
// request line written straight to a file by the logfmt formatter) and
// once through logrus's own entry and formatter, to a buffer.
type linePair struct {
	direct, logrus http.Handler
	file           *os.File
	buf            *lockedBuffer
	mask           *regexp.Regexp
}

// newLinePairs returns, for text and JSON, the proxy and the decision API
// over set as linePairs.
func newLinePairs(t testing.TB, set *rules.Set) map[string]linePair {
	formats := []struct {
		name          string
		direct, plain logrus.Formatter
		mask          string
	}{
		{"text", &logfmt.Text{}, &logrus.TextFormatter{DisableColors: true, FullTimestamp: true}, `time="[^"]*"|latency_ms=[^ ]*`},
		{"json", &logfmt.JSON{}, &logrus.JSONFormatter{}, `"time":"[^"]*"|"latency_ms":[^,}]*`},
	}
	pairs := map[string]linePair{}
	for _, f := range formats {
		for _, front := range []string{"proxy", "api"} {
			file, err := os.Create(filepath.Join(t.TempDir(), "log"))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { file.Close() })
			direct := logTo(file)
			direct.SetFormatter(f.direct)
			buf := &lockedBuffer{}
			plain := logTo(buf)
			plain.SetFormatter(f.plain)
			build := func(l *logrus.Logger) http.Handler {
				if front == "proxy" {
					return proxy.NewHandler(proxy.HandlerOptions{DecisionOptions: logged(set, l)})
				}
				return proxy.NewAPI(proxy.APIOptions{DecisionOptions: logged(set, l)})
			}
			pairs[f.name+" "+front] = linePair{direct: build(direct), logrus: build(plain), file: file, buf: buf, mask: regexp.MustCompile(f.mask)}
		}
	}
	return pairs
}

// serve answers r through both handlers and returns the line each wrote,
// the time and latency masked.
func (p linePair) serve(t testing.TB, r *http.Request) (direct, viaLogrus string) {
	t.Helper()
	if _, err := p.file.Seek(0, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	if err := p.file.Truncate(0); err != nil {
		t.Fatal(err)
	}
	p.buf.Reset()
	p.direct.ServeHTTP(httptest.NewRecorder(), r.Clone(r.Context()))
	p.logrus.ServeHTTP(httptest.NewRecorder(), r.Clone(r.Context()))
	b, err := os.ReadFile(p.file.Name())
	if err != nil {
		t.Fatal(err)
	}
	return p.mask.ReplaceAllString(string(b), "MASKED"), p.mask.ReplaceAllString(p.buf.String(), "MASKED")
}

// The request line written straight by the server's formatters is byte
// for byte the line logrus writes for the same request, on the proxy and
// the decision API, in text and JSON: allowed, denied by the authorizer
// or the authenticator, no rule, an unreachable upstream, a path refused,
// and values that need quoting and escaping. Neither holds the query (a
// credential may be in it).
func TestRequestLineSameAsLogrus(t *testing.T) {
	up := echoUpstream(t)
	pairs := newLinePairs(t, ruleSet(t, withUpstream(proxyRules, up.URL)))
	targets := []string{
		"/public/ok?access_token=s3cret",
		"/admin/x",
		"/closed?token=s3cret",
		"/nothing/here",
		"/dead",
		"/public/a%20b%22c%5C%01%C3%BC%FF%E2%80%A8=%3D",
		"/public/../admin",
		"/public/%2e%2e/x",
	}
	for name, p := range pairs {
		for _, target := range targets {
			u := target
			if strings.HasSuffix(name, "api") {
				u = "/decisions" + target
			}
			r := httptest.NewRequest(http.MethodGet, "http://app.example"+u, nil)
			r.RemoteAddr = "127.0.0.1:40000"
			direct, viaLogrus := p.serve(t, r)
			if direct == "" || direct != viaLogrus {
				t.Errorf("%s %s:\n direct %q\n logrus %q", name, target, direct, viaLogrus)
			}
			if strings.Contains(direct, "s3cret") {
				t.Errorf("%s %s: the line holds the query's credential: %q", name, target, direct)
			}
		}
	}
}

// FuzzRequestLine sends requests of any method, host and path through
// both loggers of each front end and requires the same line.
func FuzzRequestLine(f *testing.F) {
	f.Add("GET", "app.example", "/public/x")
	f.Add("GET", `we"ird host`, "/admin/\x00\xff")
	f.Add("PURGE", "", "/closed/ü\u2028")
	f.Add("G E\tT", "h:1", "/dead")
	up := echoUpstream(f)
	pairs := newLinePairs(f, ruleSet(f, withUpstream(proxyRules, up.URL)))
	f.Fuzz(func(t *testing.T, method, host, path string) {
		for name, p := range pairs {
			u := &url.URL{Path: path}
			if strings.HasSuffix(name, "api") {
				// Always a decision: any other path has no line.
				u.Path = "/decisions/" + strings.TrimPrefix(path, "/")
			}
			r := (&http.Request{Method: method, URL: u, RequestURI: u.RequestURI(), Host: host, Header: http.Header{}, RemoteAddr: "127.0.0.1:40000"}).WithContext(context.Background())
			direct, viaLogrus := p.serve(t, r)
			if direct == "" || direct != viaLogrus {
				t.Errorf("%s %q %q %q:\n direct %q\n logrus %q", name, method, host, path, direct, viaLogrus)
			}
		}
	})
}
