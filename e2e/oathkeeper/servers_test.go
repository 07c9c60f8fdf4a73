package oathkeeper

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/portcullis-proxy/portcullis/testsupport/kratostest"
	"github.com/portcullis-proxy/portcullis/testsupport/testkeys"
)

// environment is what both products talk to: real loopback servers, a real
// Kratos with one registered identity, and signing keys.
type environment struct {
	dir string

	upstream   *httptest.Server // echoes the request it received as JSON
	emptyStore *httptest.Server // a session store answering 200 with no body
	subjects   *httptest.Server // a session store answering {"sub": ..., "subject": ...}
	authz      *httptest.Server // remote authorizer: /allow 200, /deny 403, /bad 400
	jwks       *httptest.Server // /rsa: the RSA public set, /hs: the HS256 secret
	introspect *httptest.Server // RFC 7662 over a fixed token table
	hydrator   *httptest.Server // answers the session it receives with extra.hydrated set

	kratos   *kratostest.Kratos
	identity kratostest.Identity

	rsaKey jose.JSONWebKey
	hsKey  jose.JSONWebKey
	// idtKeys is the id_token mutator's private key set (a file).
	idtKeys string

	vars map[string]string
}

// expand replaces {{NAME}} placeholders (tokens, URLs) in s.
func (e *environment) expand(s string) string {
	for k, v := range e.vars {
		s = strings.ReplaceAll(s, "{{"+k+"}}", v)
	}
	return s
}

// echoUpstream answers every request with what it received.
func echoUpstream(t testing.TB) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hs := map[string]string{}
		for k, v := range r.Header {
			hs[k] = strings.Join(v, ", ")
		}
		hs["Host"] = r.Host
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"echo": true, "method": r.Method, "path": r.URL.Path, "query": r.URL.RawQuery,
			"headers": hs, "body": string(b),
		})
	}))
	t.Cleanup(srv.Close)
	return srv
}

// introspection tokens and what the endpoint says about them.
var introspected = map[string]map[string]any{
	"tok-active": {"active": true, "sub": "alice", "scope": "scope-1 scope-2", "iss": "issuer-1",
		"aud": []string{"aud-1"}, "token_use": "access_token", "client_id": "client-1",
		"ext": map[string]any{"team": "blue"}},
	"tok-inactive": {"active": false},
	"tok-noscope":  {"active": true, "sub": "bob"},
}

func newEnvironment(t *testing.T) *environment {
	t.Helper()
	e := &environment{dir: t.TempDir()}
	e.upstream = echoUpstream(t)
	e.emptyStore = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(e.emptyStore.Close)
	e.subjects = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"sub": "from-sub", "subject": "from-subject", "extra": {"team": "blue"}}`))
	}))
	t.Cleanup(e.subjects.Close)
	e.authz = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		switch r.URL.Path {
		case "/allow":
			w.WriteHeader(http.StatusOK)
		case "/deny":
			w.WriteHeader(http.StatusForbidden)
		case "/bad":
			w.WriteHeader(http.StatusBadRequest)
		case "/unauthorized":
			w.WriteHeader(http.StatusUnauthorized)
		case "/fail":
			w.WriteHeader(http.StatusInternalServerError)
		default:
			w.WriteHeader(http.StatusNotFound)
		}
	}))
	t.Cleanup(e.authz.Close)

	e.rsaKey = testkeys.RSA(t, "rsa-1")
	e.hsKey = jose.JSONWebKey{Key: []byte("a-shared-secret-of-thirty-two-bytes!"), KeyID: "hs-1",
		Algorithm: string(jose.HS256), Use: "sig"}
	rsaSet := testkeys.PublicSet(t, e.rsaKey)
	hsSet := testkeys.Set(t, e.hsKey)
	e.jwks = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/rsa":
			_, _ = w.Write(rsaSet)
		case "/hs":
			_, _ = w.Write(hsSet)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(e.jwks.Close)

	e.introspect = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		doc, ok := introspected[r.PostForm.Get("token")]
		if !ok {
			doc = map[string]any{"active": false}
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(doc)
	}))
	t.Cleanup(e.introspect.Close)

	e.hydrator = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var sess map[string]any
		if err := json.NewDecoder(r.Body).Decode(&sess); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		extra, _ := sess["extra"].(map[string]any)
		if extra == nil {
			extra = map[string]any{}
		}
		extra["hydrated"] = "yes:" + fmt.Sprint(sess["subject"])
		sess["extra"] = extra
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(sess)
	}))
	t.Cleanup(e.hydrator.Close)

	idt := testkeys.RSA(t, "idt-1")
	e.idtKeys = filepath.Join(e.dir, "jwks-idt.json")
	if err := os.WriteFile(e.idtKeys, testkeys.Set(t, idt), 0o600); err != nil {
		t.Fatal(err)
	}

	e.kratos = kratostest.Start(t, kratostest.Options{})
	e.identity = e.kratos.RegisterAPI(t)
	browser := e.kratos.RegisterBrowser(t)

	now := float64(timeNow().Unix())
	e.vars = map[string]string{
		"UPSTREAM":    e.upstream.URL,
		"UPSTREAM_HP": strings.TrimPrefix(e.upstream.URL, "http://"),
		"EMPTY_STORE": e.emptyStore.URL,
		"SUBJECTS":    e.subjects.URL,
		"AUTHZ":       e.authz.URL,
		"JWKS":        e.jwks.URL,
		"INTROSPECT":  e.introspect.URL,
		"HYDRATOR":    e.hydrator.URL,
		"WHOAMI":      e.kratos.WhoamiURL(),
		"KRATOS":      e.kratos.PublicURL(),
		"IDT_KEYS":    "file://" + e.idtKeys,
		"SESSION":     e.identity.SessionToken,
		"IDENTITY":    e.identity.IdentityID,
		"COOKIE":      browser.CookieHeader(),
		"JWT_SCOPED": testkeys.Sign(t, e.rsaKey, map[string]any{"sub": "jwt-user", "iss": "issuer-1",
			"aud": []string{"aud-1"}, "exp": now + 3600, "iat": now,
			"scp": []string{"scope-3", "scope-2", "scope-1"}}, false),
		"JWT_SCOPE_STRING": testkeys.Sign(t, e.rsaKey, map[string]any{"sub": "jwt-user", "exp": now + 3600,
			"scope": "scope-1 scope-2"}, false),
		"JWT_PLAIN": testkeys.Sign(t, e.rsaKey, map[string]any{"sub": "jwt-user", "exp": now + 3600,
			"number": 10, "nested": map[string]any{"flag": true}}, false),
		"JWT_NO_SUB":  testkeys.Sign(t, e.rsaKey, map[string]any{"exp": now + 3600}, false),
		"JWT_NO_KID":  testkeys.Sign(t, e.rsaKey, map[string]any{"sub": "jwt-user", "exp": now + 3600}, true),
		"JWT_EXPIRED": testkeys.Sign(t, e.rsaKey, map[string]any{"sub": "jwt-user", "exp": now - 3600}, false),
		"JWT_HS":      testkeys.Sign(t, e.hsKey, map[string]any{"sub": "hs-user", "exp": now + 3600}, false),
	}
	return e
}
