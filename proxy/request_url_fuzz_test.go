package proxy_test

import (
	"encoding/json"
	"net"
	"net/http"
	"net/url"
	"path"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portcullis-proxy/portcullis/internal/httpguard"
	"github.com/portcullis-proxy/portcullis/proxy"
	"github.com/portcullis-proxy/portcullis/rules"
	"github.com/portcullis-proxy/portcullis/testsupport/handlertest"
)

// pathRules allow /public/... and deny /admin...; anything else has no
// rule (404).
var pathRules = publicRule + adminRule

// pathFixture is a guarded proxy over pathRules in front of an upstream
// that reports the path it received, built once per fuzzing process.
type pathFixture struct {
	front string
	set   *rules.Set
}

var (
	pathOnce sync.Once
	pathFx   *pathFixture
)

func newPathFixture(t testing.TB) *pathFixture {
	pathOnce.Do(func() {
		up := echoUpstream(nilCleanup{t})
		set := ruleSet(t, withUpstream(pathRules, up.URL))
		h := proxy.NewHandler(proxy.HandlerOptions{DecisionOptions: over(set)})
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		srv := &http.Server{Handler: h, ReadHeaderTimeout: 2 * time.Second}
		go srv.Serve(httpguard.Protect(srv, ln))
		pathFx = &pathFixture{front: ln.Addr().String(), set: set}
	})
	return pathFx
}

// nilCleanup keeps the fixture's upstream running for the whole process,
// past the test that happened to start it.
type nilCleanup struct{ testing.TB }

func (nilCleanup) Cleanup(func()) {}

// FuzzRequestPath sends arbitrary request targets through the proxy. When
// a request reaches the upstream, the path the upstream reads is already
// clean, and matching that path selects the rule that allowed it: no
// spelling of a path (dot segments, repeated or encoded slashes, percent
// encodings, case) reaches the upstream as a path another rule governs.
func FuzzRequestPath(f *testing.F) {
	for _, target := range []string{
		"/public/a", "/public/../admin/x", "/public/%2e%2e/admin", "/public/%2E%2E%2Fadmin", "/public/..%2fadmin",
		"//admin/x", "/public//..//admin", "/./admin", "/public/./../admin", "/ADMIN/x", "/Public/x",
		"/public/%252e%252e/admin", "/public/%00/x", "/public/a%2Fb", "/public/..\\admin", "/public;/../admin",
		"http://other.example/public/x", "http://other.example/admin", "*", "/public/%zz", "/public/\u00e9",
		"/public/a?x=/../admin", "/public/a#../../admin", "/public", "/public/", "/admin",
	} {
		f.Add(target)
	}
	f.Fuzz(func(t *testing.T, target string) {
		fx := newPathFixture(t)
		res, body, _ := handlertest.RawRequest(t, fx.front, "GET "+target+" HTTP/1.1\r\nHost: proxy.test\r\n")
		if res == nil {
			return // refused outright (malformed), nothing forwarded
		}
		if res.Header.Get("X-Upstream") != "yes" {
			if res.StatusCode < 400 {
				t.Fatalf("%q: %d without reaching the upstream", target, res.StatusCode)
			}
			return
		}
		if res.StatusCode != http.StatusOK {
			t.Fatalf("%q: upstream reached with %d", target, res.StatusCode)
		}
		var got seen
		if err := json.Unmarshal(body, &got); err != nil {
			t.Fatalf("%q: %v", target, err)
		}
		p := got.Path
		if got.RawPath != "" {
			if dec, err := url.PathUnescape(got.RawPath); err != nil || dec != p {
				t.Fatalf("%q: the upstream's raw path %q does not decode to its path %q", target, got.RawPath, p)
			}
		}
		clean := path.Clean(p)
		if strings.HasSuffix(p, "/") && clean != "/" {
			clean += "/"
		}
		if clean != p {
			t.Fatalf("%q reached the upstream as %q, which is not clean (%q)", target, p, clean)
		}
		rule, _, err := fx.set.Match(http.MethodGet, &url.URL{Scheme: "http", Host: "proxy.test", Path: p})
		if err != nil || rule.ID != "public" {
			id := ""
			if rule != nil {
				id = rule.ID
			}
			t.Fatalf("%q reached the upstream as %q, which matches rule %q (%v), not the rule that allowed it", target, p, id, err)
		}
	})
}
