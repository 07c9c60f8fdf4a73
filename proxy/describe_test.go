package proxy_test

import (
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/portcullis-proxy/portcullis/testsupport/handlertest"
)

// strictRules: an anonymous /public/ area, a guest-visible page, and an
// /admin area and /secret page that only a deny rule covers. Each allowing
// rule names itself in X-Rule, so a 200 says which rule approved.
var strictRules = handlertest.Rules(
	namedRule("public", "http://app.example/public/<.*>", ""),
	namedRule("guest", "http://app.example/guest", ""),
	namedRule("files", "http://app.example/files/<[a-z0-9 .%-]+>", ""),
	handlertest.Rule{ID: "admin", URL: "http://app.example/admin<.*>", Authorizer: "deny"},
	handlertest.Rule{ID: "secret", URL: "http://app.example/secret<.*>", Authorizer: "deny"},
)

// strictPatterns are the allowing rules' URL patterns as plain regular
// expressions, written independently of portcullis's matcher: the
// differential test checks a decision against them.
var strictPatterns = map[string]*regexp.Regexp{
	"public": regexp.MustCompile(`^http://app\.example/public/.*$`),
	"guest":  regexp.MustCompile(`^http://app\.example/guest$`),
	"files":  regexp.MustCompile(`^http://app\.example/files/[a-z0-9 .%-]+$`),
}

// strictAPI is a real API server on loopback over strictRules.
func strictAPI(t testing.TB) string {
	return serveAPI(t, ruleSet(t, strictRules)).Listener.Addr().String()
}

// rawDecision sends head (a request line and headers, without the final
// CRLF) to addr byte for byte and returns the status and X-Rule.
func rawDecision(t testing.TB, addr, head string) (int, string) {
	t.Helper()
	res, _, err := handlertest.RawRequest(t, addr, head)
	if res == nil {
		t.Fatalf("%q: %v", head, err)
	}
	return res.StatusCode, res.Header.Get("X-Rule")
}

// viaForwardedURI describes a request with X-Forwarded-Uri, as nginx's
// auth_request and Traefik's ForwardAuth do.
func viaForwardedURI(uri string) string {
	return "GET /decisions HTTP/1.1\r\nHost: portcullis\r\nX-Forwarded-Method: GET\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: app.example\r\nX-Forwarded-Uri: " + uri + "\r\n"
}

// viaPath describes a request by the /decisions/<path> form.
func viaPath(uri string) string {
	return "GET /decisions" + uri + " HTTP/1.1\r\nHost: app.example\r\n"
}

// TestDecisionsRefuseAmbiguousPaths: the attacks of the review (an encoded
// slash that nginx passes raw to the application, a raw "#") and every
// other spelling whose meaning differs between parsers are 400 on both
// forms of the decision API, never a decision.
func TestDecisionsRefuseAmbiguousPaths(t *testing.T) {
	addr := strictAPI(t)
	for _, uri := range []string{
		"/admin/..%2fpublic/y", "/admin/..%2Fpublic/y", "/secret#/../public/x", "/public/../admin",
		"/public/%2e%2e/admin", "/public/%2E%2e/admin", "/public/.%2e/admin", "/public/./x", "/public/%2e/x",
		"/public/..", "/public/..;/admin", "/public/..;x/admin", "//public/x", "/public//x", "/public/x%2fy",
		"/public/x%5cy", "/public/x\\y", "/public/x%23y", "/public/x%3fy", "/public/%00x", "/public/%0ax",
		"/public/x%7f", "/public/x%zz", "/public/x%2", "/public/%252e%252e/admin", "/public/x\x01y",
		"/public/x\ty", "public/x", "/public/x%25", "/public/%c0%ae%c0%ae/admin", "/public/%ff", "/public/%e0%80%ae",
	} {
		for name, head := range map[string]string{"X-Forwarded-Uri": viaForwardedURI(uri), "path": viaPath(uri)} {
			if strings.ContainsAny(uri, "\t\x01") && name == "path" {
				continue // not a request line net/http reads at all
			}
			if !strings.HasPrefix(uri, "/") && name == "path" {
				continue // /decisionspublic/x is not the decision API
			}
			if status, _ := rawDecision(t, addr, head); status != http.StatusBadRequest {
				t.Errorf("%s %q = %d, want 400", name, uri, status)
			}
		}
	}
	// Percent-encoded characters that are not separators are decoded
	// once, as before, and clean paths are decided as usual.
	for uri, want := range map[string]int{
		"/public/x": 200, "/public/caf%C3%A9": 200, "/public/a%20b": 200, "/public/%7Euser": 200,
		"/guest": 200, "/public/x?next=/../admin": 200, "/admin/x": 403, "/secret": 403, "/nothing": 404,
		"/public/": 200,
	} {
		for name, head := range map[string]string{"X-Forwarded-Uri": viaForwardedURI(uri), "path": viaPath(uri)} {
			if status, _ := rawDecision(t, addr, head); status != want {
				t.Errorf("%s %q = %d, want %d", name, uri, status, want)
			}
		}
	}
	// A path that only decoding brings under the rule is refused: an
	// application routing on the raw path would not see /guest.
	if status, _ := rawDecision(t, addr, viaForwardedURI("/%67uest")); status != http.StatusBadRequest {
		t.Errorf("/%%67uest = %d, want 400 (raw and decoded paths select different rules)", status)
	}
}

// TestDecisionsForwardedHostAndProto: X-Forwarded-Host is exactly one
// host[:port] and X-Forwarded-Proto exactly http or https; anything else,
// or a list of values, is a 400 (the review's attack pasted "/public"
// into the host to match the /public rule for /secret).
func TestDecisionsForwardedHostAndProto(t *testing.T) {
	addr := strictAPI(t)
	const uri = "X-Forwarded-Uri: /secret\r\n"
	refuse := []string{
		"X-Forwarded-Host: app.example/public\r\n",
		"X-Forwarded-Host: app.example/public/\r\n",
		"X-Forwarded-Host: app.example?x\r\n",
		"X-Forwarded-Host: app.example#x\r\n",
		"X-Forwarded-Host: user@app.example\r\n",
		"X-Forwarded-Host: app.example, other.example\r\n",
		"X-Forwarded-Host: app.example\r\nX-Forwarded-Host: other.example\r\n",
		"X-Forwarded-Host: app.example:\r\n",
		"X-Forwarded-Host: app.example:99999\r\n",
		"X-Forwarded-Host: app.example:80:80\r\n",
		"X-Forwarded-Host: [::1\r\n",
		"X-Forwarded-Host: [fe80::1%25eth0]\r\n",
		"X-Forwarded-Host: app%2eexample\r\n",
		"X-Forwarded-Host: app\\example\r\n",
		"X-Forwarded-Proto: ftp\r\n",
		"X-Forwarded-Proto: https, http\r\n",
		"X-Forwarded-Proto: http\r\nX-Forwarded-Proto: https\r\n",
		"X-Forwarded-Proto: http://\r\n",
		"X-Forwarded-Method: GET\r\nX-Forwarded-Method: POST\r\n",
		"X-Forwarded-Method: GE T\r\n",
	}
	for _, h := range refuse {
		head := "GET /decisions HTTP/1.1\r\nHost: app.example\r\n" + uri + h
		if status, _ := rawDecision(t, addr, head); status != http.StatusBadRequest {
			t.Errorf("%q = %d, want 400", h, status)
		}
	}
	// The /decisions/<path> form takes the host from Host, which is
	// held to the same rule.
	if status, _ := rawDecision(t, addr, "GET /decisions/secret HTTP/1.1\r\nHost: app.example/public\r\n"); status == http.StatusOK {
		t.Errorf("Host app.example/public = %d, want a refusal", status)
	}
	accept := map[string]int{
		"X-Forwarded-Host: app.example\r\nX-Forwarded-Uri: /guest\r\n":                             200,
		"X-Forwarded-Host: APP.example\r\nX-Forwarded-Uri: /guest\r\n":                             404, // hosts are matched as written
		"X-Forwarded-Host: app.example:8080\r\nX-Forwarded-Uri: /guest\r\n":                        404,
		"X-Forwarded-Host: [::1]:8080\r\nX-Forwarded-Uri: /guest\r\n":                              404,
		"X-Forwarded-Host: 127.0.0.1\r\nX-Forwarded-Uri: /guest\r\n":                               404,
		"X-Forwarded-Proto: HTTP\r\nX-Forwarded-Host: app.example\r\nX-Forwarded-Uri: /guest\r\n":  200,
		"X-Forwarded-Proto: https\r\nX-Forwarded-Host: app.example\r\nX-Forwarded-Uri: /guest\r\n": 404,
	}
	for h, want := range accept {
		head := "GET /decisions HTTP/1.1\r\nHost: portcullis\r\n" + h
		if status, _ := rawDecision(t, addr, head); status != want {
			t.Errorf("%q = %d, want %d", h, status, want)
		}
	}
}

// hostilePaths generates the differential corpus: every combination of a
// prefix, a confusing middle and a target, in several encodings.
func hostilePaths() []string {
	prefixes := []string{"/public", "/public/x", "/guest", "/files", "/admin", "/secret", "", "/PUBLIC"}
	middles := []string{
		"/../", "/..%2f", "/..%2F", "/%2e%2e/", "/%2E%2E%2F", "/.%2e/", "/%2e./", "/./", "/%2e/", "//", "/%2f",
		"/..;/", "/..\\", "/%5c", "\\..\\", "#/../", "%23/../", "?/../", "%3f/../", "/%00/", "/%0d%0a/",
		"/%252e%252e/", "/%25/", "/;/", "/.../", "/x/", "/", "/%20/", "/%C3%A9/", "/%7e/", "/%", "/%g0/",
		"/%2", "/./../", "/ /", "/\t/", "/\x7f/", "/\xc3\xa9/", "/%c0%ae%c0%ae/", "/%c0%af", "/\xc0\xae\xc0\xae/",
	}
	targets := []string{"admin", "admin/x", "secret", "public/x", "guest", "files/a", ""}
	var out []string
	for _, p := range prefixes {
		for _, m := range middles {
			for _, t := range targets {
				out = append(out, p+m+t)
			}
		}
	}
	return out
}

// fuzzCorpus reads the string seeds of the committed fuzz corpora of the
// path and forwarded-header targets.
func fuzzCorpus(t testing.TB) []string {
	var out []string
	for _, dir := range []string{"testdata/fuzz/FuzzRequestPath", "testdata/fuzz/FuzzForwardedHeaders"} {
		files, _ := filepath.Glob(filepath.Join(dir, "*"))
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			for _, line := range strings.Split(string(b), "\n") {
				if s, ok := strings.CutPrefix(line, "string("); ok {
					if v, err := strconv.Unquote(strings.TrimSuffix(s, ")")); err == nil && strings.HasPrefix(v, "/") {
						out = append(out, v)
					}
				}
			}
		}
	}
	if len(out) == 0 {
		t.Fatal("no fuzz corpus found")
	}
	return out
}

// TestDecisionsDifferentialPaths: for every hostile path (generated, plus
// the fuzz corpora), whenever /decisions answers 200 for rule R, every
// path an application may route on — the path as received, the path
// decoded once, and that path with dot segments resolved — is one R
// matches. Checked against independent regular expressions, over both
// forms of the API, on a real loopback server.
func TestDecisionsDifferentialPaths(t *testing.T) {
	addr := strictAPI(t)
	corpus := append(hostilePaths(), fuzzCorpus(t)...)
	allowed := 0
	for _, uri := range corpus {
		if strings.ContainsAny(uri, "\r\n") {
			continue // not a header value or request line at all
		}
		heads := []string{viaForwardedURI(uri)}
		if strings.HasPrefix(uri, "/") && !strings.ContainsAny(uri, " \t") {
			heads = append(heads, viaPath(uri))
		}
		for _, head := range heads {
			status, rule := rawDecision(t, addr, head)
			if status != http.StatusOK {
				continue
			}
			allowed++
			re := strictPatterns[rule]
			if re == nil {
				t.Fatalf("%q: 200 without a known allowing rule (X-Rule %q)", uri, rule)
			}
			raw, _, _ := strings.Cut(uri, "?")
			views := []string{raw}
			if dec, err := url.PathUnescape(raw); err == nil {
				clean := path.Clean(dec)
				if strings.HasSuffix(dec, "/") && clean != "/" {
					clean += "/"
				}
				views = append(views, dec, clean)
			} else {
				t.Errorf("%q: approved though it does not decode: %v", uri, err)
			}
			for _, v := range views {
				if !re.MatchString("http://app.example" + v) {
					t.Errorf("%q: approved by rule %q, but an application routing on %q is outside it", uri, rule, v)
				}
			}
		}
	}
	if allowed == 0 {
		t.Fatal("no path of the corpus was allowed: the test checks nothing")
	}
	t.Logf("%d paths, %d decisions allowed, all inside their rule", len(corpus), allowed)
}
