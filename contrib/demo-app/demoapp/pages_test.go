package demoapp

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/portcullis-proxy/portcullis/testsupport/faultinject"
	"github.com/portcullis-proxy/portcullis/testsupport/kratostest"
)

var kratos = &kratostest.Shared{}

func TestMain(m *testing.M) { kratostest.RunMain(m, kratos) }

// newApp serves the app against the given Kratos public URL.
func newApp(t *testing.T, kratosURL string) string {
	t.Helper()
	h, err := New(Config{KratosPublicURL: kratosURL})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}

// get fetches u with the given cookies and without following redirects.
func get(t *testing.T, u, cookie string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	if cookie != "" {
		req.Header.Set("Cookie", cookie)
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	return res, string(body)
}

// browserFlow starts a Kratos browser flow the way a browser's first visit
// does and returns its id and the CSRF cookie Kratos set.
func browserFlow(t *testing.T, k *kratostest.Kratos, kind string) (id, cookie string) {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar}
	req, _ := http.NewRequest(http.MethodGet, k.PublicURL()+"/self-service/"+kind+"/browser", nil)
	req.Header.Set("Accept", "application/json")
	res, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var f struct {
		ID string `json:"id"`
	}
	if err := json.NewDecoder(res.Body).Decode(&f); err != nil || f.ID == "" {
		t.Fatalf("starting a %s flow: %d %v", kind, res.StatusCode, err)
	}
	pub, _ := url.Parse(k.PublicURL())
	var parts []string
	for _, c := range jar.Cookies(pub) {
		parts = append(parts, c.Name+"="+c.Value)
	}
	return f.ID, strings.Join(parts, "; ")
}

func TestFlowPagesStartFlowsAtKratos(t *testing.T) {
	app := newApp(t, kratos.Get(t).PublicURL())
	cases := []struct{ path, want string }{
		{"/login", "/.ory/kratos/public/self-service/login/browser"},
		{"/registration", "/.ory/kratos/public/self-service/registration/browser"},
		{"/login?return_to=http%3A%2F%2F127.0.0.1%3A4455%2F", "/.ory/kratos/public/self-service/login/browser?return_to=http%3A%2F%2F127.0.0.1%3A4455%2F"},
		// An unknown flow starts over.
		{"/login?flow=00000000-0000-0000-0000-000000000000", "/.ory/kratos/public/self-service/login/browser"},
	}
	for _, tc := range cases {
		res, _ := get(t, app+tc.path, "")
		if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != tc.want {
			t.Errorf("GET %s: %d %q, want 303 %q", tc.path, res.StatusCode, res.Header.Get("Location"), tc.want)
		}
	}
}

func TestFlowPagesRenderKratosForms(t *testing.T) {
	k := kratos.Get(t)
	app := newApp(t, k.PublicURL())
	cases := []struct {
		kind  string
		want  []string
		other string
	}{
		{"login", []string{`name="identifier"`, `type="password" name="password"`, `name="method" value="password"`}, `href="/registration"`},
		// The test Kratos uses Kratos's default two-step registration,
		// whose first form asks only for the traits (the quickstart turns
		// on the one-step form); the page renders whichever Kratos sends.
		{"registration", []string{`type="email" name="traits.email"`, `<button type="submit" name="method" value="`}, `href="/login"`},
	}
	for _, tc := range cases {
		t.Run(tc.kind, func(t *testing.T) {
			id, cookie := browserFlow(t, k, tc.kind)
			res, page := get(t, app+"/"+tc.kind+"?flow="+id, cookie)
			if res.StatusCode != http.StatusOK {
				t.Fatalf("%d:\n%s", res.StatusCode, page)
			}
			action := fmt.Sprintf(`action="%s/self-service/%s?flow=%s" method="POST"`, k.PublicURL(), tc.kind, id)
			for _, w := range append(tc.want, action, `type="hidden" name="csrf_token" value="`, tc.other) {
				if !strings.Contains(page, w) {
					t.Errorf("the page lacks %s:\n%s", w, page)
				}
			}
		})
	}
}

func TestFlowPageWithoutTheFlowsCookieExplains(t *testing.T) {
	k := kratos.Get(t)
	app := newApp(t, k.PublicURL())
	id, _ := browserFlow(t, k, "login")
	res, page := get(t, app+"/login?flow="+id, "")
	if res.StatusCode != http.StatusForbidden || !strings.Contains(page, "another browser session") {
		t.Errorf("flow without its CSRF cookie: %d\n%s", res.StatusCode, page)
	}
}

func TestPagesWhenKratosIsDown(t *testing.T) {
	app := newApp(t, faultinject.RefusingURL(t))
	res, page := get(t, app+"/login?flow=00000000-0000-0000-0000-000000000000", "")
	if res.StatusCode != http.StatusBadGateway || !strings.Contains(page, "could not be asked") {
		t.Errorf("login with Kratos down: %d\n%s", res.StatusCode, page)
	}
	// The index page still renders; it only lacks the logout link.
	res, page = get(t, app+"/", "ory_kratos_session=x")
	if res.StatusCode != http.StatusOK || strings.Contains(page, `id="logout"`) {
		t.Errorf("index with Kratos down: %d\n%s", res.StatusCode, page)
	}
}

func TestErrorPageShowsKratosError(t *testing.T) {
	app := newApp(t, kratos.Get(t).PublicURL())
	// Kratos serves a fixed example error under this id.
	res, page := get(t, app+"/error?id=stub:500", "")
	if res.StatusCode != http.StatusOK || !strings.Contains(page, `class="msg error"`) {
		t.Fatalf("%d:\n%s", res.StatusCode, page)
	}
	res, page = get(t, app+"/error?id=00000000-0000-0000-0000-000000000000", "")
	if res.StatusCode != http.StatusOK || !strings.Contains(page, "could not be fetched") {
		t.Errorf("unknown error id: %d\n%s", res.StatusCode, page)
	}
}

func TestIndexShowsIdentityAndLogout(t *testing.T) {
	k := kratos.Get(t)
	app := newApp(t, k.PublicURL())
	id := k.RegisterBrowser(t)
	req, _ := http.NewRequest(http.MethodGet, app+"/", nil)
	req.Header.Set("Cookie", id.CookieHeader())
	req.Header.Set(HeaderEmail, id.Email)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	page := string(body)
	for _, w := range []string{"Signed in as <strong>" + id.Email + "</strong>", `id="logout" href="` + k.PublicURL() + "/self-service/logout?token="} {
		if !strings.Contains(page, w) {
			t.Errorf("index lacks %s:\n%s", w, page)
		}
	}
	// Without a session there is no identity and no logout link.
	_, page = get(t, app+"/", "")
	if strings.Contains(page, `id="logout"`) || !strings.Contains(page, "open this page through portcullis") {
		t.Errorf("index without a session:\n%s", page)
	}
}

func TestNewRequiresAnAbsoluteKratosURL(t *testing.T) {
	for _, u := range []string{"", "kratos:4433", "/relative", "ftp://x"} {
		if _, err := New(Config{KratosPublicURL: u}); err == nil {
			t.Errorf("New(%q) succeeded", u)
		}
	}
}
