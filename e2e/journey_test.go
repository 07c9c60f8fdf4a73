package e2e

import (
	"context"
	"errors"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
)

// TestQuickstartJourneyOverHTTP walks the quickstart the way a browser
// does, with a cookie jar and the browser's Accept header, and then opens
// the WebSocket with the session cookie: sent to the login page, on to
// registration, registered and back on the app, the tunnel greets the
// registered identity, echoes, and is ended by portcullis at the rule's max
// lifetime with 1008. Then the refusals: a foreign Origin, no cookie, an
// API client, and the same browser after signing out.
func TestQuickstartJourneyOverHTTP(t *testing.T) {
	qs := startQuickstart(t, quickstartOptions{MaxLifetime: 2 * time.Second})
	b := newFormBrowser(t)

	// An anonymous browser asking for the app is sent to the login page
	// (portcullis's redirect error handler), which starts a Kratos login
	// flow that comes back to the page with the flow's form.
	page := b.get(qs.URL + "/")
	if got, want := b.hops[0], qs.URL+"/login?return_to="+url.QueryEscape(qs.URL+"/"); got != want {
		t.Fatalf("first redirect = %s, want %s", got, want)
	}
	if b.last.Path != "/login" || b.last.Query().Get("flow") == "" {
		t.Fatalf("ended at %s, want the login page with a flow id", b.last)
	}
	if !strings.Contains(page, `id="login"`) || !strings.Contains(page, `name="identifier"`) {
		t.Fatalf("the login page does not render Kratos's login form:\n%s", page)
	}

	// On to registration, keeping return_to, and register.
	email, page := register(t, qs, b, page)
	logout := attr(t, page, `id="logout" href="`)

	// The WebSocket, with the browser's cookie and Origin.
	conn, greeting := dialEcho(t, qs, b.cookieHeader(qs.URL), qs.URL)
	if !strings.Contains(greeting, email) {
		t.Errorf("greeting %q does not name %s: the identity header did not reach the upstream handshake", greeting, email)
	}
	wantEcho(t, conn, "hello through portcullis")
	code, reason := readClose(t, conn, 30*time.Second)
	if code != ws.StatusPolicyViolation || reason != "max lifetime reached" {
		t.Errorf("tunnel ended with %d %q, want 1008 \"max lifetime reached\"", code, reason)
	}

	// Refusals at the handshake.
	if status := dialStatus(t, qs, b.cookieHeader(qs.URL), "http://evil.example"); status != http.StatusForbidden {
		t.Errorf("foreign Origin: handshake status %d, want 403", status)
	}
	if status := dialStatus(t, qs, "", qs.URL); status != http.StatusUnauthorized {
		t.Errorf("no cookie: handshake status %d, want 401", status)
	}

	// An API client without a session gets JSON, not a redirect.
	res, err := http.Get(qs.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(res.Header.Get("Content-Type"), "application/json") {
		t.Errorf("API client: %d %s %s, want 401 JSON", res.StatusCode, res.Header.Get("Content-Type"), body)
	}

	// Signing out ends the session: the app is behind the login page again.
	b.get(logout)
	if b.last.Path != "/login" {
		t.Errorf("after signing out the browser is at %s, want the login page", b.last)
	}
	b.get(qs.URL + "/")
	if b.last.Path != "/login" {
		t.Errorf("after signing out / leads to %s, want the login page", b.last)
	}
}

// register follows the login page's link to registration, fills in the
// form as a person would and submits it to Kratos through portcullis. It
// returns the email and the app page the browser lands on.
func register(t *testing.T, qs *quickstart, b *formBrowser, loginPage string) (string, string) {
	t.Helper()
	page := b.get(qs.URL + attr(t, loginPage, `id="other-flow" href="`))
	if b.last.Path != "/registration" || b.last.Query().Get("flow") == "" {
		t.Fatalf("ended at %s, want the registration page with a flow id", b.last)
	}
	email := fmt.Sprintf("visitor-%d@example.com", time.Now().UnixNano())
	form := url.Values{
		"csrf_token":   {attr(t, page, `name="csrf_token" value="`)},
		"traits.email": {email},
		"password":     {"correct horse battery staple"},
		"method":       {"password"},
	}
	action := attr(t, page, `action="`)
	if !strings.HasPrefix(action, qs.URL+"/.ory/kratos/public/self-service/registration?flow=") {
		t.Fatalf("form action %q does not go to Kratos through portcullis", action)
	}
	page = b.post(action, form)
	if b.last.String() != qs.URL+"/" {
		t.Fatalf("after registering the browser is at %s, want %s/", b.last, qs.URL)
	}
	if !strings.Contains(page, "Signed in as <strong>"+email+"</strong>") {
		t.Fatalf("the app page does not name the registered identity:\n%s", page)
	}
	return email, page
}

// TestQuickstartSignOutEndsTheTunnel checks what the quickstart tells its
// visitors to try: signing out while a tunnel is open ends it at once with
// 1008 "session revoked" — the kratos-logout rule revokes the session as
// Kratos confirms the logout — long before the rule's re-check (15s).
func TestQuickstartSignOutEndsTheTunnel(t *testing.T) {
	qs := startQuickstart(t, quickstartOptions{})
	b := newFormBrowser(t)
	_, page := register(t, qs, b, b.get(qs.URL+"/"))
	conn, _ := dialEcho(t, qs, b.cookieHeader(qs.URL), qs.URL)
	start := time.Now()
	b.get(attr(t, page, `id="logout" href="`))
	// The bound is generous for a loaded machine, and still well inside
	// the 15s re-check that would otherwise be what closes the tunnel.
	code, reason := readClose(t, conn, 10*time.Second)
	if code != ws.StatusPolicyViolation || reason != "session revoked" {
		t.Errorf("after signing out the tunnel ended with %d %q, want 1008 \"session revoked\"", code, reason)
	}
	t.Logf("sign-out to the tunnel's Close: %v", time.Since(start))
}

// formBrowser is an HTTP client that behaves like a browser for the
// quickstart's pages: cookies, Accept: text/html, redirects followed and
// recorded.
type formBrowser struct {
	t      *testing.T
	client *http.Client
	jar    *cookiejar.Jar
	hops   []string // redirect targets of the last request
	last   *url.URL // final URL of the last request
}

func newFormBrowser(t *testing.T) *formBrowser { return newFormBrowserDialing(t, nil) }

// newFormBrowserDialing is newFormBrowser with its connections made by
// dial (nil: the default dialer), for an origin served at another address.
func newFormBrowserDialing(t *testing.T, dial func(ctx context.Context, network, addr string) (net.Conn, error)) *formBrowser {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if dial != nil {
		tr.DialContext = dial
	}
	t.Cleanup(tr.CloseIdleConnections)
	b := &formBrowser{t: t, jar: jar}
	b.client = &http.Client{
		Jar:       jar,
		Timeout:   30 * time.Second,
		Transport: acceptHTML{tr},
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) > 10 {
				return errors.New("too many redirects")
			}
			b.hops = append(b.hops, req.URL.String())
			return nil
		},
	}
	return b
}

// acceptHTML sends the Accept header of a browser navigation.
type acceptHTML struct{ rt http.RoundTripper }

func (a acceptHTML) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8")
	return a.rt.RoundTrip(r)
}

func (b *formBrowser) do(req *http.Request) string {
	b.t.Helper()
	b.hops = nil
	res, err := b.client.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	b.last = res.Request.URL
	if res.StatusCode != http.StatusOK {
		b.t.Fatalf("%s %s ended at %s with %d:\n%s", req.Method, req.URL, b.last, res.StatusCode, body)
	}
	return string(body)
}

func (b *formBrowser) get(u string) string {
	b.t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		b.t.Fatal(err)
	}
	return b.do(req)
}

func (b *formBrowser) post(u string, form url.Values) string {
	b.t.Helper()
	req, err := http.NewRequest(http.MethodPost, u, strings.NewReader(form.Encode()))
	if err != nil {
		b.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.do(req)
}

// cookieHeader is the Cookie header the browser would send to u.
func (b *formBrowser) cookieHeader(u string) string {
	pu, _ := url.Parse(u)
	var parts []string
	for _, c := range b.jar.Cookies(pu) {
		parts = append(parts, c.Name+"="+c.Value)
	}
	return strings.Join(parts, "; ")
}

// attr returns the (HTML-unescaped) text after prefix up to the next quote.
func attr(t *testing.T, page, prefix string) string {
	t.Helper()
	m := regexp.MustCompile(regexp.QuoteMeta(prefix) + `([^"]*)"`).FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("page has no %s...\":\n%s", prefix, page)
	}
	return html.UnescapeString(m[1])
}

// echoConn is a client WebSocket connection whose reads start with the
// bytes the dialer buffered after the handshake.
type echoConn struct {
	io.Reader
	net.Conn
}

func (c echoConn) Read(p []byte) (int, error) { return c.Reader.Read(p) }

// dialEcho opens the demo's WebSocket through portcullis and returns the
// connection and the app's greeting.
func dialEcho(t *testing.T, qs *quickstart, cookie, origin string) (io.ReadWriter, string) {
	t.Helper()
	conn, br, _, err := dialer(qs, cookie, origin).Dial(context.Background(), "ws"+strings.TrimPrefix(qs.URL, "http")+"/ws")
	if err != nil {
		t.Fatalf("WebSocket handshake through portcullis: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	var rw io.ReadWriter = conn
	if br != nil {
		rw = echoConn{Reader: io.MultiReader(br, conn), Conn: conn}
	}
	return rw, readText(t, rw)
}

// dialStatus returns the HTTP status a refused handshake was answered
// with (101 when it was not refused).
func dialStatus(t *testing.T, qs *quickstart, cookie, origin string) int {
	t.Helper()
	conn, _, _, err := dialer(qs, cookie, origin).Dial(context.Background(), "ws"+strings.TrimPrefix(qs.URL, "http")+"/ws")
	if err == nil {
		conn.Close()
		return http.StatusSwitchingProtocols
	}
	var se ws.StatusError
	if errors.As(err, &se) {
		return int(se)
	}
	t.Fatalf("handshake failed without a status: %v", err)
	return 0
}

func dialer(qs *quickstart, cookie, origin string) ws.Dialer {
	h := http.Header{}
	if cookie != "" {
		h.Set("Cookie", cookie)
	}
	if origin != "" {
		h.Set("Origin", origin)
	}
	return ws.Dialer{Header: ws.HandshakeHeaderHTTP(h), Timeout: 10 * time.Second, NetDial: qs.dial}
}

// wantEcho sends msg as a text message over the tunnel to the echo
// upstream and fails t unless msg comes back.
func wantEcho(t *testing.T, rw io.ReadWriter, msg string) {
	t.Helper()
	if err := wsutil.WriteClientText(rw, []byte(msg)); err != nil {
		t.Fatal(err)
	}
	if got := readText(t, rw); got != msg {
		t.Errorf("echo of %q = %q", msg, got)
	}
}

// readText reads the next data message.
func readText(t *testing.T, rw io.ReadWriter) string {
	t.Helper()
	if c, ok := rw.(interface{ SetReadDeadline(time.Time) error }); ok {
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
	}
	data, _, err := wsutil.ReadServerData(rw)
	if err != nil {
		t.Fatalf("reading from the tunnel: %v", err)
	}
	return string(data)
}

// readClose reads until the server's Close (answering it) and returns its
// code and reason.
func readClose(t *testing.T, rw io.ReadWriter, within time.Duration) (ws.StatusCode, string) {
	t.Helper()
	if c, ok := rw.(interface{ SetReadDeadline(time.Time) error }); ok {
		c.SetReadDeadline(time.Now().Add(within))
	}
	for {
		data, _, err := wsutil.ReadServerData(rw)
		var closed wsutil.ClosedError
		if errors.As(err, &closed) {
			return closed.Code, closed.Reason
		}
		if err != nil {
			t.Fatalf("waiting for the tunnel to close: %v", err)
		}
		t.Logf("message before the close: %q", data)
	}
}
