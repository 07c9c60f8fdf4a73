package proxy_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc/codes"

	"github.com/portcullis-proxy/portcullis/proxy"
)

// TestConcurrentFirstUse: the front ends are complete when their
// constructor returns. A proxy handler, an API and an ext_authz service,
// each freshly built, take their very first requests from many goroutines
// at once (released together), and every request gets its right answer;
// under -race, nothing may be initialised on first use.
func TestConcurrentFirstUse(t *testing.T) {
	up := echoUpstream(t)
	opts := over(ruleSet(t, withUpstream(benchRule, up.URL)))
	const rounds, callers = 10, 8
	for range rounds {
		h := proxy.NewHandler(proxy.HandlerOptions{DecisionOptions: opts})
		api := proxy.NewAPI(proxy.APIOptions{DecisionOptions: opts})
		x := proxy.NewExtAuthz(opts)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for range callers {
			wg.Go(func() {
				<-start
				w := httptest.NewRecorder()
				h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "http://app.example/anon/items/1", nil))
				var s seen
				if err := json.NewDecoder(w.Body).Decode(&s); w.Code != http.StatusOK || err != nil || s.Header.Get("X-User") != "anonymous" {
					t.Errorf("proxy: %d %v, upstream saw X-User %q; want 200 and anonymous", w.Code, err, s.Header.Get("X-User"))
				}
			})
			wg.Go(func() {
				<-start
				w := httptest.NewRecorder()
				api.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "http://api.example/decisions/anon/items/1", nil))
				if w.Code != http.StatusOK || w.Header().Get("X-User") != "anonymous" {
					t.Errorf("decision: %d X-User %q, want 200 anonymous", w.Code, w.Header().Get("X-User"))
				}
			})
			wg.Go(func() {
				<-start
				w := httptest.NewRecorder()
				api.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "http://api.example/rules/anon", nil))
				if w.Code != http.StatusOK {
					t.Errorf("GET /rules/anon: %d, want 200", w.Code)
				}
			})
			wg.Go(func() {
				<-start
				res, err := x.Check(context.Background(), &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
					Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
						Method: http.MethodGet, Scheme: "http", Host: "app.example", Path: "/anon/items/1",
					}},
				}})
				if err != nil || codes.Code(res.GetStatus().GetCode()) != codes.OK {
					t.Errorf("check: %v %v, want OK", res.GetStatus(), err)
				}
			})
		}
		close(start)
		wg.Wait()
	}
}

// TestConstructorsRequireRules: a front end without a rule source is a
// wiring mistake, refused when it is built rather than at its first
// request.
func TestConstructorsRequireRules(t *testing.T) {
	for name, build := range map[string]func(){
		"NewHandler":  func() { proxy.NewHandler(proxy.HandlerOptions{}) },
		"NewAPI":      func() { proxy.NewAPI(proxy.APIOptions{}) },
		"NewExtAuthz": func() { proxy.NewExtAuthz(proxy.DecisionOptions{}) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s without Rules did not panic", name)
				}
			}()
			build()
		}()
	}
}

// TestFrontEndsShareTheSequence: the proxy, /decisions and ext_authz run
// one sequence, so they agree on what comes first. A request its front end
// cannot describe is a 400 before any rule is asked, loaded or not; a
// described request is a 503 until the rules load.
func TestFrontEndsShareTheSequence(t *testing.T) {
	opts := over(nil) // no rule set loaded
	front := serve(t, proxy.NewHandler(proxy.HandlerOptions{DecisionOptions: opts}))
	api := serve(t, proxy.NewAPI(proxy.APIOptions{DecisionOptions: opts}))
	x := proxy.NewExtAuthz(opts)
	check := func(path string) int {
		res, err := x.Check(context.Background(), &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
			Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
				Method: http.MethodGet, Scheme: "http", Host: "app.example", Path: path,
			}},
		}})
		if err != nil {
			t.Fatalf("check %s: %v", path, err)
		}
		return int(res.GetDeniedResponse().GetStatus().GetCode())
	}
	for _, tc := range []struct {
		name                  string
		proxyPath, decidePath string
		want                  int
	}{
		{"refused description", "/public/..;/admin", "/public/../admin", http.StatusBadRequest},
		{"rules not loaded", "/public/x", "/public/x", http.StatusServiceUnavailable},
	} {
		res, _ := get(t, http.MethodGet, front.URL+tc.proxyPath, nil)
		if res.StatusCode != tc.want {
			t.Errorf("%s: proxy GET %s = %d, want %d", tc.name, tc.proxyPath, res.StatusCode, tc.want)
		}
		res, _ = get(t, http.MethodGet, api.URL+"/decisions", http.Header{"X-Forwarded-Host": {"app.example"}, "X-Forwarded-Uri": {tc.decidePath}})
		if res.StatusCode != tc.want {
			t.Errorf("%s: /decisions for %s = %d, want %d", tc.name, tc.decidePath, res.StatusCode, tc.want)
		}
		if got := check(tc.decidePath); got != tc.want {
			t.Errorf("%s: ext_authz check of %s = %d, want %d", tc.name, tc.decidePath, got, tc.want)
		}
	}
}
