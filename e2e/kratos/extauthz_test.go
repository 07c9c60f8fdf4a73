package kratos

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
)

// checkCase is one request described to both front ends of the decision
// path: Envoy's ext_authz over gRPC and /decisions.
type checkCase struct {
	name   string
	method string
	path   string // as Envoy sends :path, query included
	header map[string]string
}

// checkAnswer is what either front end answered, in the same terms.
type checkAnswer struct {
	status int
	header http.Header // allowed: the headers to set; denied: the answer's
	body   string
	remove []string // allowed, gRPC only: headers to remove
	query  []string // allowed, gRPC only: query parameters to remove
}

const checkHost = "app.example"

func askGRPC(t *testing.T, c authv3.AuthorizationClient, tc checkCase) checkAnswer {
	t.Helper()
	h := map[string]string{":authority": checkHost, ":path": tc.path, ":method": tc.method}
	for k, v := range tc.header {
		h[strings.ToLower(k)] = v
	}
	req := &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source: &authv3.AttributeContext_Peer{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{
			SocketAddress: &corev3.SocketAddress{Address: "203.0.113.9", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 50000}}}}},
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Method: tc.method, Scheme: "http", Host: checkHost, Path: tc.path, Headers: h, Protocol: "HTTP/1.1",
		}},
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := c.Check(ctx, req)
	if err != nil {
		t.Fatalf("%s: Check: %v", tc.name, err)
	}
	return answerOf(t, res)
}

func answerOf(t *testing.T, res *authv3.CheckResponse) checkAnswer {
	t.Helper()
	a := checkAnswer{header: http.Header{}}
	apply := func(opts []*corev3.HeaderValueOption) {
		for _, o := range opts {
			k := http.CanonicalHeaderKey(o.GetHeader().GetKey())
			if o.GetAppendAction() == corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD {
				a.header[k] = nil
			}
			a.header[k] = append(a.header[k], o.GetHeader().GetValue())
		}
	}
	switch r := res.GetHttpResponse().(type) {
	case *authv3.CheckResponse_OkResponse:
		if res.GetStatus().GetCode() != int32(codes.OK) {
			t.Fatalf("an OkResponse with gRPC status %d", res.GetStatus().GetCode())
		}
		a.status = http.StatusOK
		apply(r.OkResponse.GetHeaders())
		a.remove, a.query = r.OkResponse.GetHeadersToRemove(), r.OkResponse.GetQueryParametersToRemove()
	case *authv3.CheckResponse_DeniedResponse:
		if res.GetStatus().GetCode() == int32(codes.OK) {
			t.Fatal("a DeniedResponse with gRPC status OK: Envoy would let the request through")
		}
		a.status = int(r.DeniedResponse.GetStatus().GetCode())
		apply(r.DeniedResponse.GetHeaders())
		a.body = r.DeniedResponse.GetBody()
	default:
		t.Fatalf("no HTTP response in %v", res)
	}
	return a
}

func askDecisions(t *testing.T, apiURL string, tc checkCase) checkAnswer {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, apiURL+"/decisions", nil)
	for k, v := range tc.header {
		req.Header.Set(k, v)
	}
	req.Header.Set("X-Forwarded-Method", tc.method)
	req.Header.Set("X-Forwarded-Proto", "http")
	req.Header.Set("X-Forwarded-Host", checkHost)
	req.Header.Set("X-Forwarded-Uri", tc.path)
	res, err := noRedirects.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	return checkAnswer{status: res.StatusCode, header: res.Header, body: string(body)}
}

// TestExtAuthzMatchesDecisionAPI describes the same requests to Envoy's
// gRPC ext_authz service (a client built from Envoy's own generated types,
// against the real listener) and to /decisions, with identities from a real
// Kratos, and requires the same answers: statuses, the mutators' headers on
// an allow, the error handler's headers and body on a denial.
func TestExtAuthzMatchesDecisionAPI(t *testing.T) {
	k, _, g := startShared(t, "1ms")
	conn, err := grpc.NewClient(g.Addr("grpc"), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := authv3.NewAuthorizationClient(conn)

	api := k.RegisterAPI(t)
	browser := k.RegisterBrowser(t)
	cases := []struct {
		checkCase
		status int
		header map[string]string // on the gRPC answer
	}{
		{checkCase{"anonymous, spoofed identity header", "GET", "/open/x?y=1", map[string]string{"X-User": "admin"}}, 200, map[string]string{"X-User": "anonymous"}},
		{checkCase{"Kratos session token", "GET", "/api/me", map[string]string{"Authorization": "Bearer " + api.SessionToken, "X-User": "someone"}}, 200, map[string]string{"X-User": api.IdentityID}},
		{checkCase{"Kratos session cookie", "GET", "/web/page", map[string]string{"Cookie": browser.CookieHeader()}}, 200, map[string]string{"X-User": browser.IdentityID}},
		{checkCase{"no credential", "GET", "/api/me", nil}, 401, nil},
		{checkCase{"token Kratos rejects", "GET", "/api/me", map[string]string{"Authorization": "Bearer ory_st_invalid"}}, 401, nil},
		{checkCase{"browser without session is sent to log in", "GET", "/web/page?tab=2", map[string]string{"Accept": "text/html"}}, 302, nil},
		{checkCase{"deny authorizer", "GET", "/admin/users", nil}, 403, nil},
		{checkCase{"no rule", "GET", "/nowhere", nil}, 404, nil},
		{checkCase{"method not in the rule", "DELETE", "/open/x", nil}, 404, nil},
		{checkCase{"encoded dot segments are refused", "GET", "/open/%2e%2e/admin/users", nil}, 400, nil},
		{checkCase{"dot segments are refused", "GET", "/open/../admin/users", nil}, 400, nil},
		{checkCase{"empty segments are refused", "GET", "//admin/users", nil}, 400, nil},
		{checkCase{"encoded slashes are refused", "GET", "/open/x%2f..%2f..%2fadmin/users", nil}, 400, nil},
		{checkCase{"a raw path must select the rule its decoding selects", "GET", "/%6fpen/x", nil}, 400, nil},
		{checkCase{"unreserved escapes decode to the same rule", "GET", "/open/%78", nil}, 200, nil},
		{checkCase{"a fragment is refused", "GET", "/open/x#frag", nil}, 400, nil},
		{checkCase{"servlet path parameters are refused", "GET", "/open/..;/admin/users", nil}, 400, nil},
		{checkCase{"backslash is refused", "GET", "/open/..\\admin/users", nil}, 400, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := askGRPC(t, client, tc.checkCase)
			if got.status != tc.status {
				t.Fatalf("gRPC: status %d, want %d (body %s)", got.status, tc.status, got.body)
			}
			for k, v := range tc.header {
				if g := got.header.Get(k); g != v {
					t.Errorf("gRPC: header %s = %q, want %q", k, g, v)
				}
			}
			if got.status == http.StatusUnauthorized && tc.name == "no credential" && got.header.Get("Www-Authenticate") == "" {
				t.Error("gRPC: the www_authenticate handler's challenge is missing")
			}
			if got.status == http.StatusForbidden && got.header.Get("Content-Type") == "" {
				t.Error("gRPC: the JSON error's Content-Type is missing")
			}
			want := askDecisions(t, g.APIURL(), tc.checkCase)
			if want.status != got.status {
				t.Errorf("gRPC status %d, /decisions %d", got.status, want.status)
			}
			for _, k := range []string{"X-User", "X-Email", "Www-Authenticate", "Location", "Content-Type"} {
				if got.header.Get(k) != want.header.Get(k) {
					t.Errorf("header %s: gRPC %q, /decisions %q", k, got.header.Get(k), want.header.Get(k))
				}
			}
			if got.status != http.StatusOK && got.body != want.body {
				t.Errorf("body: gRPC %q, /decisions %q", got.body, want.body)
			}
		})
	}

	t.Run("the login redirect returns to the described page", func(t *testing.T) {
		got := askGRPC(t, client, checkCase{"", "GET", "/web/page?tab=2", map[string]string{"Accept": "text/html"}})
		loc, err := url.Parse(got.header.Get("Location"))
		if err != nil || loc.Query().Get("return_to") != "http://"+checkHost+"/web/page?tab=2" {
			t.Errorf("Location %q, want return_to=http://%s/web/page?tab=2", got.header.Get("Location"), checkHost)
		}
	})

	t.Run("credential carriers are removed upstream", func(t *testing.T) {
		got := askGRPC(t, client, checkCase{"", "GET", "/q/x?access_token=" + api.SessionToken + "&keep=1", nil})
		if got.status != http.StatusOK || len(got.query) != 1 || got.query[0] != "access_token" {
			t.Errorf("query token: status %d, query parameters to remove %q; want 200 and [access_token]", got.status, got.query)
		}
		got = askGRPC(t, client, checkCase{"", "GET", "/ws/chat", map[string]string{
			"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Protocol": wsTokenPrefix + api.SessionToken + ", chat"}})
		if got.status != http.StatusOK || got.header.Get("Sec-WebSocket-Protocol") != "chat" {
			t.Errorf("subprotocol token: status %d, Sec-WebSocket-Protocol %q; want 200 and %q", got.status, got.header.Get("Sec-WebSocket-Protocol"), "chat")
		}
		if got.header.Get("X-User") != api.IdentityID {
			t.Errorf("subprotocol token: X-User %q, want %q", got.header.Get("X-User"), api.IdentityID)
		}
	})

	t.Run("a check that describes no request is a 400, never an allow", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for _, req := range []*authv3.CheckRequest{
			{},
			{Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{Method: "GET", Host: checkHost}}}},
			{Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{Method: "GET", Host: checkHost, Path: "/open/x", Scheme: "gopher"}}}},
		} {
			res, err := client.Check(ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			if a := answerOf(t, res); a.status != http.StatusBadRequest {
				t.Errorf("%v: status %d, want 400", req, a.status)
			}
		}
	})
}
