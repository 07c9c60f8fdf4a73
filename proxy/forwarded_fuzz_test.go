package proxy_test

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"path"
	"strings"
	"sync"
	"testing"

	"github.com/portcullis-proxy/portcullis/proxy"
)

var (
	fwdOnce  sync.Once
	fwdAPI   http.Handler
	fwdProxy http.Handler
)

// fwdHandlers are the decision API over strictRules and a proxy that
// trusts and matches forwarded headers over the same rules (with an
// upstream that is never dialled: the fuzz target checks decisions only),
// built once per fuzzing process.
func fwdHandlers(t testing.TB) (http.Handler, http.Handler) {
	fwdOnce.Do(func() {
		fwdAPI = proxy.NewAPI(proxy.APIOptions{DecisionOptions: over(ruleSet(t, strictRules))})
		forwarded := strings.ReplaceAll(strictRules, "\n- id:", "\n- upstream: {url: \"http://upstream.test\"}\n  id:")
		fwdProxy = proxy.NewHandler(proxy.HandlerOptions{DecisionOptions: over(ruleSet(t, forwarded)), TrustForwardedHeaders: true, MatchForwardedHost: true,
			Transport: refuseTransport{}})
	})
	return fwdAPI, fwdProxy
}

// refuseTransport answers every upstream request with 299 and the host it
// was sent for, so an allowed proxy request is recognisable without a
// network.
type refuseTransport struct{}

func (refuseTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	return &http.Response{StatusCode: 299, Header: http.Header{"X-Upstream": {"yes"}}, Body: http.NoBody, Request: r}, nil
}

// hostIsExact reports, independently of portcullis, whether h is one
// host[:port] and nothing else: net/url reads "http://h/" back with h as
// its whole authority and no user info.
func hostIsExact(h string) bool {
	u, err := url.Parse("http://" + h + "/")
	return err == nil && u.Host == h && u.User == nil && u.Path == "/" && u.RawQuery == "" && u.Fragment == "" &&
		!strings.ContainsAny(h, ",%\\ \t")
}

// FuzzForwardedHeaders feeds arbitrary X-Forwarded-Host, X-Forwarded-Proto
// and X-Forwarded-Uri values (one or two header lines each) to the
// decision API and to a proxy that trusts them. Whatever they hold, a
// request is allowed only when the host was exactly one host[:port], the
// scheme exactly http or https, and (decision API) the path, raw and
// decoded once, is inside the rule that allowed it; never a panic.
func FuzzForwardedHeaders(f *testing.F) {
	for _, s := range [][3]string{
		{"app.example", "http", "/public/x"},
		{"app.example/public", "http", "/secret"},
		{"app.example", "http", "/admin/..%2fpublic/y"},
		{"app.example", "http", "/secret#/../public/x"},
		{"app.example, other.example", "http", "/guest"},
		{"app.example", "https, http", "/guest"},
		{"app.example\nother", "http", "/guest"},
		{"user@app.example", "http", "/guest"},
		{"[::1]:8080", "HTTP", "/guest"},
		{"app.example:80", "http", "/public/%2e%2e/admin"},
		{"", "", "/guest"},
		{"app.example", "http", "/%67uest"},
	} {
		f.Add(s[0], s[1], s[2])
	}
	f.Fuzz(func(t *testing.T, host, proto, uri string) {
		api, px := fwdHandlers(t)
		set := func(h http.Header, k, v string) {
			if v != "" {
				h[k] = strings.Split(v, "\n") // a newline makes a second header line
			}
		}
		// The decision API.
		r := httptest.NewRequest(http.MethodGet, "http://portcullis/decisions", nil)
		set(r.Header, "X-Forwarded-Host", host)
		set(r.Header, "X-Forwarded-Proto", proto)
		set(r.Header, "X-Forwarded-Uri", uri)
		w := httptest.NewRecorder()
		api.ServeHTTP(w, r)
		if w.Code == http.StatusOK {
			checkAllowed(t, "decision", host, proto, w.Header().Get("X-Rule"))
			raw, _, _ := strings.Cut(uri, "?")
			dec, err := url.PathUnescape(raw)
			if err != nil {
				t.Fatalf("decision: %q approved though it does not decode", uri)
			}
			clean := path.Clean(dec)
			if strings.HasSuffix(dec, "/") && clean != "/" {
				clean += "/"
			}
			re := strictPatterns[w.Header().Get("X-Rule")]
			for _, v := range []string{raw, dec, clean} {
				if !re.MatchString("http://app.example" + v) {
					t.Fatalf("decision: %q approved by %q, but %q is outside it", uri, w.Header().Get("X-Rule"), v)
				}
			}
		}
		// The proxy, trusting and matching the same headers.
		target := "/guest"
		if strings.HasPrefix(uri, "/") && !strings.ContainsAny(uri, " \t\r\n#") {
			if _, err := url.ParseRequestURI(uri); err == nil {
				target = uri
			}
		}
		r = httptest.NewRequest(http.MethodGet, "http://portcullis"+target, nil)
		r.Host = "portcullis"
		set(r.Header, "X-Forwarded-Host", host)
		set(r.Header, "X-Forwarded-Proto", proto)
		w = httptest.NewRecorder()
		px.ServeHTTP(w, r)
		if w.Code == 299 {
			checkAllowed(t, "proxy", host, proto, "")
		}
	})
}

// checkAllowed fails unless an allowed request's forwarded host and proto
// were each absent or exactly one valid value.
func checkAllowed(t *testing.T, front, host, proto, rule string) {
	t.Helper()
	if host != "" && (strings.Contains(host, "\n") || !hostIsExact(host)) {
		t.Fatalf("%s: allowed (rule %q) with X-Forwarded-Host %q", front, rule, host)
	}
	if proto != "" && !strings.EqualFold(proto, "http") && !strings.EqualFold(proto, "https") {
		t.Fatalf("%s: allowed (rule %q) with X-Forwarded-Proto %q", front, rule, proto)
	}
}

// TestForwardedFuzzSeedsReachBothChecks: the seeds include requests each
// front end allows, so FuzzForwardedHeaders's checks are exercised.
func TestForwardedFuzzSeedsReachBothChecks(t *testing.T) {
	api, px := fwdHandlers(t)
	r := httptest.NewRequest(http.MethodGet, "http://portcullis/decisions", nil)
	r.Header.Set("X-Forwarded-Host", "app.example")
	r.Header.Set("X-Forwarded-Uri", "/guest")
	w := httptest.NewRecorder()
	api.ServeHTTP(w, r)
	if w.Code != http.StatusOK || w.Header().Get("X-Rule") != "guest" {
		t.Errorf("decision = %d %q, want 200 guest", w.Code, w.Header().Get("X-Rule"))
	}
	r = httptest.NewRequest(http.MethodGet, "http://portcullis/guest", nil)
	r.Header.Set("X-Forwarded-Host", "app.example")
	w = httptest.NewRecorder()
	px.ServeHTTP(w, r)
	if w.Code != 299 {
		t.Errorf("proxy = %d, want the upstream's 299", w.Code)
	}
}
