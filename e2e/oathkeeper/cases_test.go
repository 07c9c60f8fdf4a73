package oathkeeper

import "net/http"

const (
	viaProxy     = "proxy"
	viaDecisions = "decisions"
)

// testCase is one request sent to both products.
type testCase struct {
	name   string
	via    string // viaProxy (default) or viaDecisions
	method string // default GET
	path   string
	host   string // Host header, when not the listener's address
	header map[string]string
	body   string
	// headers are the response headers compared (Content-Type always is).
	headers []string
	// upstream are the request headers the echo upstream received that are
	// compared.
	upstream []string
	// compareText compares a body that is not JSON, trimmed.
	compareText bool

	// deliberate, when set, is why portcullis answers differently on
	// purpose (a security hardening listed in
	// docs/migration-from-oathkeeper.md); want is then portcullis's answer.
	deliberate string
	want       *outcome
}

// Reasons shared by several deliberate differences.
const (
	foundTokenToStore = "the token bearer_token found is what a plain store is asked about: it is sent as Authorization: Bearer wherever the client put it; Oathkeeper forwards only the request's own Authorization and Cookie headers, so a token from another header never reaches the store"
	remoteIPHonoured  = "Oathkeeper's configuration schema refuses the request.remote_ip condition its code implements, so the handler fails with 500; portcullis honours the condition"
)

// echoed is the echo upstream's answer through the proxy: 200 with what it
// received as its JSON body.
func echoed(body map[string]any) *outcome {
	return &outcome{Status: http.StatusOK, Headers: map[string]string{"Content-Type": "application/json"}, Body: body}
}

// jsonError is the JSON error answer for status code: its code and its
// status text under "error".
func jsonError(code int) *outcome {
	return &outcome{Status: code, Headers: map[string]string{"Content-Type": "application/json"},
		Body: map[string]any{"error": map[string]any{"code": code, "status": http.StatusText(code)}}}
}

// h builds a header map.
func h(kv ...string) map[string]string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return m
}

// regexpCases run against regexpRules. Names say the Oathkeeper test or
// fixture each is ported from.
var regexpCases = []testCase{
	// api/decision_test.go
	{name: "decision/no rule matches", via: viaDecisions, path: "/invalid"},
	{name: "decision/two rules match", via: viaDecisions, path: "/overlap/1234"},
	{name: "decision/noop passes", via: viaDecisions, path: "/authn-noop/1234", headers: []string{"Authorization"}},
	{name: "decision/strip_path rule passes", via: viaDecisions, path: "/strip-path/authn-noop/1234"},
	{name: "decision/no authorizer configured", via: viaDecisions, path: "/authn-anon/authz-none/cred-none/1234"},
	{name: "decision/no mutator configured", via: viaDecisions, path: "/authn-anon/authz-allow/cred-none/1234"},
	{name: "decision/authorizer denies", via: viaDecisions, path: "/deny/1234"},
	{name: "decision/authenticator fails", via: viaDecisions, path: "/unauthorized/1234"},
	{name: "decision/www_authenticate on deny", via: viaDecisions, path: "/err/www-deny/1234", headers: []string{"WWW-Authenticate"}},
	{name: "decision/client Content-Length not copied", via: viaDecisions, path: "/authn-noop/1234",
		body: "non-empty body", headers: []string{"Content-Length"}},
	{name: "decision/method POST not in rule", via: viaDecisions, method: http.MethodPost, path: "/authn-noop/1234"},
	{name: "decision/X-Forwarded-Method and -Uri describe the request", via: viaDecisions, path: "",
		header: h("X-Forwarded-Method", "POST", "X-Forwarded-Uri", "/noop/described?a=1")},
	{name: "decision/X-Forwarded-Method not in the rule", via: viaDecisions, path: "",
		header: h("X-Forwarded-Method", "POST", "X-Forwarded-Uri", "/authn-noop/1234")},
	{name: "decision/header mutator", via: viaDecisions, path: "/anon/x", headers: []string{"X-User"}},
	{name: "decision/cookie mutator", via: viaDecisions, path: "/anon-subject/x", headers: []string{"X-User", "Cookie"}},

	// proxy/proxy_test.go and proxy/request_handler_test.go
	{name: "proxy/noop passes with query", path: "/noop/a/b?x=1&y=2"},
	{name: "proxy/POST body forwarded", method: http.MethodPost, path: "/noop/post", body: `{"a":1}`,
		header: h("Content-Type", "application/json")},
	{name: "proxy/no rule", path: "/nothing-here"},
	{name: "proxy/two rules match", path: "/overlap/1"},
	{name: "proxy/regexp digits do not match letters", path: "/authn-noop/abc"},
	{name: "proxy/strip_path with slashes and preserve_host", path: "/strip-path/authn-noop/1234", upstream: []string{"Host"}},
	{name: "proxy/strip_path without leading slash", path: "/api/users/1"},
	{name: "proxy/strip_path with trailing slash", path: "/trail/x/y"},
	{name: "proxy/strip_path of forwarded-header fixture", path: "/http"},
	{name: "proxy/strip_path in the middle of the path", path: "/v1/api/x",
		deliberate: "strip_path removes a leading path segment only; Oathkeeper removes its first occurrence anywhere in the path",
		want:       echoed(map[string]any{"method": "GET", "path": "/v1/api/x", "query": ""})},
	{name: "proxy/rule without upstream", path: "/no-upstream/x"},
	{name: "decision/rule without upstream", via: viaDecisions, path: "/no-upstream/x"},
	{name: "proxy/HEAD not in the rule", method: http.MethodHead, path: "/authn-noop/1"},
	{name: "proxy/encoded path", path: "/noop/a%20b/c"},
	{name: "proxy/DELETE with query", method: http.MethodDelete, path: "/noop/d?x=%2F"},
	{name: "proxy/dot segments", path: "/noop/a/../b",
		deliberate: "the path is cleaned before matching and the cleaned path goes upstream, so no rule can be bypassed by spelling; Oathkeeper forwards /noop/a/../b",
		want:       echoed(map[string]any{"method": "GET", "path": "/noop/b", "query": ""})},
	{name: "decision/dot segments", via: viaDecisions, path: "/noop/a/../b",
		deliberate: "the decision API refuses a path whose meaning depends on the parser (the application behind the proxy routes on its own reading of it): 400; Oathkeeper allows",
		want:       jsonError(400)},
	{name: "proxy/custom method", method: "CUSTOM", path: "/custom/x"},
	{name: "proxy/custom method not GET", path: "/custom/x"},
	{name: "proxy/X-Forwarded-Host of an untrusted client not sent upstream", path: "/noop/fwd",
		header: h("X-Forwarded-Host", "evil.example"), upstream: []string{"X-Forwarded-Host"},
		deliberate: "untrusted, the upstream gets portcullis's own X-Forwarded-Host (the request's Host), never the client's; Oathkeeper sends none",
		want: echoed(map[string]any{
			"X-Forwarded-Host": "SELF", "method": "GET", "path": "/noop/fwd", "query": ""})},

	// rule/matcher_test.go
	{name: "matcher/alternation, method in the rule", method: http.MethodPost, path: "/alt/foo", upstream: []string{"Host"}},
	{name: "matcher/alternation, other method", path: "/alt/foo"},
	{name: "matcher/alternation, other value", method: http.MethodPost, path: "/alt/baz"},
	{name: "matcher/alternation, strip_path of the matched value", method: http.MethodPost, path: "/alt/bar",
		deliberate: "strip_path removes a leading path segment only; Oathkeeper removes /bar from the middle of /alt/bar",
		want:       echoed(map[string]any{"method": "POST", "path": "/alt/bar", "query": ""})},

	// rule/engine_regexp_test.go: lookarounds need regexp2
	{name: "regexp/negative lookahead matches", path: "/look/user"},
	{name: "regexp/negative lookahead refuses", path: "/look/admin"},

	// pipeline/authn/authenticator_anonymous_test.go, _unauthorized_test.go
	{name: "anonymous/no credentials", path: "/anon/x", upstream: []string{"X-User"}},
	{name: "anonymous/with Authorization is not responsible", path: "/anon/x", header: h("Authorization", "Bearer abc")},
	{name: "anonymous/rule subject and cookie mutator", path: "/anon-subject/x", upstream: []string{"X-User", "Cookie"}},
	{name: "unauthorized/always 401", path: "/unauthorized/x"},
	{name: "authenticators/first not responsible, second decides", path: "/chain/x", upstream: []string{"X-User"}},
	{name: "authenticators/unknown config key", path: "/unknown-key/x"},

	// pipeline/authn/authenticator_cookie_session_test.go and _bearer_token_test.go, against Kratos
	{name: "cookie_session/no cookie", path: "/cookie-session/x"},
	{name: "cookie_session/Kratos session cookie", path: "/cookie-session/x", header: h("Cookie", "{{COOKIE}}"),
		upstream: []string{"X-User"}},
	{name: "cookie_session/Kratos rejects", path: "/cookie-session/x", header: h("Cookie", "ory_kratos_session=not-a-session")},
	{name: "cookie_session/defaults with empty session body", path: "/cookie-defaults/x",
		header: h("Cookie", "ory_kratos_session=abc"), upstream: []string{"X-User", "Cookie"}},
	{name: "cookie_session/cookie value with a comma", path: "/cookie-defaults/x",
		header: h("Cookie", "ory_kratos_session=a,b"), upstream: []string{"Cookie"}},
	{name: "cookie_session/only, a value with a comma, towards the store", path: "/cookie-only/x",
		header: h("Cookie", "other=1; ory_kratos_session=a,b"), upstream: []string{"X-User", "Cookie"},
		deliberate: "with only, just the listed cookies go to the session store (Oathkeeper sends every cookie of the request); the value with its comma is sent unchanged",
		want: echoed(map[string]any{
			"Cookie": "ory_kratos_session=a,b; other=1", "X-User": "ory_kratos_session=a,b", "method": "GET", "path": "/cookie-only/x", "query": ""})},
	{name: "session store/request path, method and query replace the URL's", method: http.MethodPut, path: "/store-path/a/b?q=1",
		header: h("Cookie", "s=1"), upstream: []string{"X-User", "X-Method", "X-Query"}},
	{name: "session store/forced method, additional and forwarded headers", path: "/store-forced/x",
		header: h("Cookie", "s=1", "X-Forward-Me", "f1", "X-Other", "o1"), upstream: []string{"X-User", "X-Extra", "X-Fwd", "X-Other"}},
	{name: "bearer_token/token_from header", path: "/bearer-header/x", header: h("X-Token", "zyx"), upstream: []string{"X-User"},
		deliberate: foundTokenToStore,
		want:       echoed(map[string]any{"X-User": "Bearer zyx", "method": "GET", "path": "/bearer-header/x", "query": ""})},
	{name: "bearer_token/token_from header missing", path: "/bearer-header/x", header: h("Authorization", "Bearer zyx")},
	{name: "bearer_token/token_from cookie", path: "/bearer-cookie/x", header: h("Cookie", "tok=zyx"), upstream: []string{"X-User"},
		deliberate: foundTokenToStore,
		want:       echoed(map[string]any{"X-User": "Bearer zyx", "method": "GET", "path": "/bearer-cookie/x", "query": ""})},
	{name: "bearer_token/Kratos session", path: "/bearer/x", header: h("Authorization", "Bearer {{SESSION}}"),
		upstream: []string{"X-User", "Authorization"}},
	{name: "bearer_token/Kratos lower-case scheme", path: "/bearer/x", header: h("Authorization", "bearer {{SESSION}}"),
		upstream: []string{"X-User"}},
	{name: "bearer_token/defaults: subject_from subject", path: "/bearer-defaults/x", header: h("Authorization", "Bearer {{SESSION}}"),
		upstream: []string{"X-User"}},
	{name: "bearer_token/default subject_from is sub", path: "/bearer-subjects/x", header: h("Authorization", "Bearer zyx"),
		upstream: []string{"X-User", "X-Team"}},
	{name: "cookie_session/default subject_from is subject", path: "/cookie-subjects/x", header: h("Cookie", "session=zyx"),
		upstream: []string{"X-User", "X-Team"}},
	{name: "bearer_token/Kratos rejects", path: "/bearer/x", header: h("Authorization", "Bearer not-a-session")},
	{name: "bearer_token/no token", path: "/bearer/x"},
	{name: "bearer_token/Authorization sent as received", path: "/bearer-echo/x", header: h("Authorization", "bearer zyx"),
		upstream: []string{"X-User"}},
	{name: "bearer_token/store answers 200 with no body", path: "/bearer-empty/x", header: h("Authorization", "Bearer zyx"),
		upstream: []string{"X-User"}},
	{name: "bearer_token/query towards the store", path: "/bearer-query/x?a=1", header: h("Authorization", "Bearer zyx"),
		upstream: []string{"X-User"}},

	// pipeline/authn/authenticator_jwt_test.go
	{name: "jwt/valid token, scp from scp", path: "/jwt/x", header: h("Authorization", "Bearer {{JWT_SCOPED}}"),
		upstream: []string{"X-User", "X-Scp"}},
	{name: "jwt/scp from scope string", path: "/jwt/x", header: h("Authorization", "Bearer {{JWT_SCOPE_STRING}}"),
		upstream: []string{"X-Scp"}},
	{name: "jwt/no scope gives empty scp", path: "/jwt/x", header: h("Authorization", "Bearer {{JWT_PLAIN}}"),
		upstream: []string{"X-Scp"}},
	{name: "jwt/no sub claim", path: "/jwt/x", header: h("Authorization", "Bearer {{JWT_NO_SUB}}"), upstream: []string{"X-User"},
		deliberate: "a verified JWT without a subject is a 401: it would reach the upstream as an empty identity; Oathkeeper admits it",
		want:       jsonError(401)},
	{name: "jwt/no kid", path: "/jwt/x", header: h("Authorization", "Bearer {{JWT_NO_KID}}"), upstream: []string{"X-User"}},
	{name: "jwt/token_from query parameter", path: "/jwt-query/x?token={{JWT_SCOPED}}&a=1", upstream: []string{"X-User"}},
	{name: "jwt/expired", path: "/jwt/x", header: h("Authorization", "Bearer {{JWT_EXPIRED}}")},
	{name: "jwt/not a jwt", path: "/jwt/x", header: h("Authorization", "Bearer abc")},
	{name: "jwt/no token", path: "/jwt/x"},
	{name: "jwt/required scope present", path: "/jwt-scope/x", header: h("Authorization", "Bearer {{JWT_SCOPED}}")},
	{name: "jwt/required scope missing", path: "/jwt-scope/x", header: h("Authorization", "Bearer {{JWT_PLAIN}}")},
	{name: "jwt/required scope with strategy none", path: "/jwt-scope-none/x", header: h("Authorization", "Bearer {{JWT_SCOPED}}")},
	{name: "jwt/required scope with strategy none, no token", path: "/jwt-scope-none/x"},
	{name: "jwt/untrusted issuer", path: "/jwt-issuer/x", header: h("Authorization", "Bearer {{JWT_SCOPED}}")},
	{name: "jwt/audience mismatch", path: "/jwt-audience/x", header: h("Authorization", "Bearer {{JWT_SCOPED}}")},
	{name: "jwt/HS256 asked for explicitly", path: "/jwt-hs/x", header: h("Authorization", "Bearer {{JWT_HS}}"),
		upstream: []string{"X-User"}},
	{name: "jwt/HS256 refused by default", path: "/jwt/x", header: h("Authorization", "Bearer {{JWT_HS}}")},
	{name: "jwt/unknown key required_audience", path: "/jwt-required-audience/x", header: h("Authorization", "Bearer {{JWT_SCOPED}}")},

	// pipeline/authn/authenticator_oauth2_introspection_test.go
	{name: "introspection/active", path: "/introspect/x", header: h("Authorization", "Bearer tok-active"),
		upstream: []string{"X-User", "X-Client", "Authorization"}},
	{name: "introspection/inactive", path: "/introspect/x", header: h("Authorization", "Bearer tok-inactive")},
	{name: "introspection/no token", path: "/introspect/x"},
	{name: "introspection/required scope, no strategy", path: "/introspect-scope/x", header: h("Authorization", "Bearer tok-active")},
	{name: "introspection/scope_strategy none", path: "/introspect-none/x", header: h("Authorization", "Bearer tok-active")},
	{name: "introspection/exact scope present", path: "/introspect-exact/x", header: h("Authorization", "Bearer tok-active")},
	{name: "introspection/exact scope missing", path: "/introspect-missing/x", header: h("Authorization", "Bearer tok-active")},
	{name: "introspection/untrusted issuer", path: "/introspect-issuer/x", header: h("Authorization", "Bearer tok-active")},
	{name: "introspection/audience mismatch", path: "/introspect-audience/x", header: h("Authorization", "Bearer tok-active")},
	{name: "introspection/preserve_host", path: "/introspect-host/x", header: h("Authorization", "Bearer tok-active"),
		upstream: []string{"X-User"}},

	// pipeline/authz/remote_test.go, remote_json_test.go
	{name: "remote/allows", path: "/remote/allow"},
	{name: "remote/POST body allowed", method: http.MethodPost, path: "/remote/allow", body: "hello"},
	{name: "remote/denies", path: "/remote/deny"},
	{name: "remote/answers 400", path: "/remote/bad"},
	{name: "remote/answers 401", path: "/remote/unauthorized"},
	{name: "remote/answers 500", path: "/remote/fail",
		deliberate: "a remote authorizer that fails (5xx, unreachable, timed out) is answered 503, a dependency outage, where Oathkeeper answers 500; both deny",
		want:       jsonError(503)},
	{name: "remote_json/allows", path: "/remote-json/allow"},
	{name: "remote_json/denies", path: "/remote-json/deny"},
	{name: "remote_json/answers 400", path: "/remote-json/bad"},

	// pipeline/mutate/mutator_id_token_test.go, _header_test.go, _cookie_test.go
	{name: "id_token/claims keep their JSON types", path: "/id-token/x", header: h("Authorization", "Bearer {{JWT_PLAIN}}"),
		upstream: []string{"Authorization"}},
	{name: "hydrator/session replaced by the API's answer", path: "/hydrate/x", upstream: []string{"X-Hydrated", "X-User"}},
	{name: "decision/id_token", via: viaDecisions, path: "/id-token/x", header: h("Authorization", "Bearer {{JWT_PLAIN}}"),
		headers: []string{"Authorization"}},
	{name: "decision/redirect for a browser", via: viaDecisions, path: "/err/when/x", header: h("Accept", "text/html"),
		headers: []string{"Location"}},
	{name: "decision/hydrator", via: viaDecisions, path: "/hydrate/x", headers: []string{"X-Hydrated"}},
	{name: "header/templates over missing keys and the match context", path: "/template-missing/x?q=1",
		upstream: []string{"X-Missing", "X-Nested", "X-Url", "X-Method"}},
	{name: "header+cookie/templates", path: "/mutate/seven", upstream: []string{"X-User", "X-Capture", "Cookie"}},

	// pipeline/errors/*_test.go
	{name: "errors/json fallback content type", path: "/unauthorized/x"},
	{name: "errors/json handler on deny", path: "/err/json/x"},
	{name: "errors/www_authenticate on 401", path: "/err/www/x", headers: []string{"WWW-Authenticate"}},
	{name: "errors/www_authenticate on deny", path: "/err/www-deny/x", headers: []string{"WWW-Authenticate"}},
	{name: "errors/redirect with return_to", path: "/err/redirect/x?a=b", headers: []string{"Location"}},
	{name: "errors/redirect with code 301", path: "/err/redirect-301/x", headers: []string{"Location"}},
	{name: "errors/when remote_ip matches", path: "/err/ip/x", headers: []string{"Location"},
		deliberate: remoteIPHonoured,
		want:       &outcome{Status: 302, Headers: map[string]string{"Content-Type": "text/html; charset=utf-8", "Location": "http://127.0.0.1:9/local"}}},
	{name: "errors/when remote_ip does not match falls back", path: "/err/ip-other/x", headers: []string{"Location"},
		deliberate: remoteIPHonoured,
		want:       jsonError(401)},
	{name: "errors/when cidr does not match", path: "/err/cidr-other/x", headers: []string{"Location"},
		deliberate: "Oathkeeper documents request.cidr but its code ignores it (the handler answers every client); portcullis applies the masks, so a handler meant for one network does not answer others",
		want:       jsonError(401)},
	{name: "errors/when error forbidden picks the second handler", path: "/err/forbidden-only/x", headers: []string{"Location", "WWW-Authenticate"}},
	{name: "errors/when html redirects", path: "/err/when/x", header: h("Accept", "text/html"), headers: []string{"Location"}},
	{name: "errors/when json answers json", path: "/err/when/x", header: h("Content-Type", "application/json")},
	{name: "errors/when nothing matches falls back", path: "/err/when/x", header: h("Accept", "image/png")},

	// test/forwarded-header
	{name: "forwarded/http rule", path: "/fwd"},
	{name: "forwarded/http rule, proto http", path: "/fwd", header: h("X-Forwarded-Proto", "http")},
	{name: "forwarded/http rule, proto https", path: "/fwd", header: h("X-Forwarded-Proto", "https")},
	{name: "forwarded/https rule", path: "/fwd-secure"},
	{name: "forwarded/https rule, proto http", path: "/fwd-secure", header: h("X-Forwarded-Proto", "http")},
	{name: "forwarded/https rule, proto https", path: "/fwd-secure", header: h("X-Forwarded-Proto", "https")},
}

// globCases run against globRules.
var globCases = []testCase{
	{name: "glob/decision noop passes", via: viaDecisions, path: "/authn-noop/1234"},
	{name: "glob/decision no rule", via: viaDecisions, path: "/invalid"},
	{name: "glob/www_authenticate on deny", via: viaDecisions, path: "/authn-anon/authz-deny/cred-noop/1234",
		headers: []string{"WWW-Authenticate"}},
	{name: "glob/alternatives foo", path: "/glob/foo/a/b", upstream: []string{"X-User"}},
	{name: "glob/alternatives baz", path: "/glob/baz/a"},
	{name: "glob/single star stops at slash", path: "/single/a/b"},
	{name: "glob/single star", path: "/single/a"},
	// rule/matcher_test.go and engine_glob_test.go
	{name: "glob/prefix alternatives", method: http.MethodPost, path: "/galt/foobar"},
	{name: "glob/prefix alternatives, other method", path: "/galt/foobar"},
	{name: "glob/prefix alternatives, no prefix", method: http.MethodPost, path: "/galt/bazfoo"},
	{name: "glob/question mark, one character", path: "/gq/u"},
	{name: "glob/question mark, several", path: "/gq/user"},
	{name: "glob/question mark, none", path: "/gq/"},
}
