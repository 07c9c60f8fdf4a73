package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/portcullis-proxy/portcullis/testsupport/kratostest"
	"github.com/portcullis-proxy/portcullis/testsupport/proctest"
)

// composeOverride is the one file the stack test adds to docker-compose.yml.
const composeOverride = "e2e/testdata/docker-compose.test.yml"

// composeOrigin is the origin the compose quickstart's rules and Kratos use;
// the test's clients reach it at the port the stack is published on.
const composeOrigin = "http://127.0.0.1:4455"

// TestComposeStack builds the shipped Dockerfile and runs the shipped
// docker-compose.yml with a Docker Engine, against stand-in base images made
// on this machine (scripts/docker-images.sh) and with the test-only override
// in e2e/testdata. Only the published host ports move (QUICKSTART_*_PORT),
// so parallel runs cannot collide; everything is torn down at the end, and
// the test checks that `docker-compose down -v` leaves nothing behind.
//
// Without an answering Docker Engine the test is skipped and says so.
func TestComposeStack(t *testing.T) {
	if testing.Short() {
		t.Skip("compose stack: skipped under -short (builds images and runs containers)")
	}
	requireDockerEngine(t)
	dc := dockerCompose(t)
	kratostest.Binary(t)

	start := time.Now()
	out, err := runFor(15*time.Minute, repoRoot, nil, filepath.Join(repoRoot, "scripts", "docker-images.sh"))
	if err != nil {
		t.Fatalf("scripts/docker-images.sh: %v\n%s", err, out)
	}
	t.Logf("stand-in images ready in %s:\n%s", time.Since(start).Round(time.Second), out)

	c := newComposeStack(t, dc)

	start = time.Now()
	c.must(25*time.Minute, "build", "--build-arg", "GOPROXY="+startModuleProxy(t))
	t.Logf("images built from the Dockerfile in %s", time.Since(start).Round(time.Second))

	t.Run("image", func(t *testing.T) { c.checkImage(t) })

	start = time.Now()
	c.up(t)
	t.Logf("stack up and ready in %s", time.Since(start).Round(time.Second))

	t.Run("journey", func(t *testing.T) { c.journey(t) })
	t.Run("kratos stopped and started", func(t *testing.T) { c.kratosOutage(t) })
	t.Run("portcullis restarted", func(t *testing.T) { c.portcullisRestart(t) })
	t.Run("down leaves nothing", func(t *testing.T) { c.down(t) })
}

// requireDockerEngine skips the test, saying so plainly, when no Docker
// Engine answers.
func requireDockerEngine(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("docker"); err != nil {
		t.Skip("compose stack: skipped, no Docker Engine answers (no docker command)")
	}
	if out, err := runFor(30*time.Second, repoRoot, nil, "docker", "info", "--format", "{{.ServerVersion}}"); err != nil {
		t.Skipf("compose stack: skipped, no Docker Engine answers (docker info: %v: %s)", err, strings.TrimSpace(out))
	}
}

// runFor runs a command with a time limit and returns its combined output.
func runFor(limit time.Duration, dir string, env []string, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	cmd.WaitDelay = 5 * time.Second
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if ctx.Err() != nil {
		err = fmt.Errorf("%w (after %s)", ctx.Err(), limit)
	}
	return out.String(), err
}

// startModuleProxy serves this machine's Go module cache as a module proxy
// (GOPROXY's file layout) on the Docker bridge's gateway, where the image
// build's containers reach it, and returns its URL. `go mod download` fills
// the cache first. Users' builds ask their own proxy; this one only makes
// the build independent of a network the test machine may lack.
//
// The port is derived from the checkout's path, so that the GOPROXY build
// argument, which is part of the build cache's key, is the same on the next
// run; when that port is taken, any free one is used (and the build cache is
// missed).
func startModuleProxy(t *testing.T) string {
	t.Helper()
	if out, err := runFor(10*time.Minute, repoRoot, nil, "go", "mod", "download"); err != nil {
		t.Fatalf("go mod download: %v\n%s", err, out)
	}
	modcache, err := runFor(time.Minute, repoRoot, nil, "go", "env", "GOMODCACHE")
	if err != nil {
		t.Fatalf("go env GOMODCACHE: %v", err)
	}
	host := bridgeGateway(t)
	sum := sha256.Sum256([]byte(repoRoot))
	port := 20000 + int(binary.BigEndian.Uint16(sum[:2]))%20000
	l, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
	if err != nil {
		l, err = net.Listen("tcp", net.JoinHostPort(host, "0"))
	}
	if err != nil {
		t.Fatalf("module proxy on the Docker bridge: %v", err)
	}
	srv := &http.Server{
		Handler:           http.FileServer(http.Dir(filepath.Join(strings.TrimSpace(modcache), "cache", "download"))),
		ReadHeaderTimeout: 10 * time.Second,
	}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return "http://" + l.Addr().String()
}

// bridgeGateway is the host's address on Docker's default bridge network:
// its IPAM gateway, or else the bridge interface's IPv4 address.
func bridgeGateway(t *testing.T) string {
	t.Helper()
	out, err := runFor(time.Minute, repoRoot, nil, "docker", "network", "inspect", "bridge", "--format",
		`{{range .IPAM.Config}}{{.Gateway}} {{end}}|{{index .Options "com.docker.network.bridge.name"}}`)
	if err != nil {
		t.Fatalf("docker network inspect bridge: %v\n%s", err, out)
	}
	gws, name, _ := strings.Cut(strings.TrimSpace(out), "|")
	for _, gw := range strings.Fields(gws) {
		if ip := net.ParseIP(gw); ip != nil && ip.To4() != nil {
			return gw
		}
	}
	if ifc, err := net.InterfaceByName(name); err == nil {
		addrs, _ := ifc.Addrs()
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil {
				return n.IP.String()
			}
		}
	}
	t.Fatalf("no IPv4 address of the Docker bridge network (%q)", out)
	return ""
}

// composeStack is one run of the compose quickstart under its own project
// name and host ports.
type composeStack struct {
	t       *testing.T
	dc      string
	project string
	env     []string
	tag     string

	proxyPort, apiPort, kratosPub, kratosAdmin int
	qs                                         *quickstart
}

func newComposeStack(t *testing.T, dc string) *composeStack {
	var b [4]byte
	rand.Read(b[:])
	sum := sha256.Sum256([]byte(repoRoot))
	ports := proctest.FreePorts(t, 7)
	c := &composeStack{
		t:           t,
		dc:          dc,
		project:     "portcullis-e2e-" + hex.EncodeToString(b[:]),
		tag:         hex.EncodeToString(sum[:6]),
		proxyPort:   ports[0],
		apiPort:     ports[1],
		kratosPub:   ports[2],
		kratosAdmin: ports[3],
	}
	c.env = []string{
		"PORTCULLIS_TEST_TAG=" + c.tag,
		"QUICKSTART_PROXY_PORT=" + strconv.Itoa(ports[0]),
		"QUICKSTART_API_PORT=" + strconv.Itoa(ports[1]),
		"QUICKSTART_KRATOS_PUBLIC_PORT=" + strconv.Itoa(ports[2]),
		"QUICKSTART_KRATOS_ADMIN_PORT=" + strconv.Itoa(ports[3]),
		"QUICKSTART_UI_PORT=" + strconv.Itoa(ports[4]),
		"QUICKSTART_MAIL_UI_PORT=" + strconv.Itoa(ports[5]),
		"QUICKSTART_MAIL_API_PORT=" + strconv.Itoa(ports[6]),
	}
	// The clients use the quickstart's origin; their connections to it go
	// to the published port, as an /etc/hosts entry would send them.
	published := "127.0.0.1:" + strconv.Itoa(c.proxyPort)
	c.qs = &quickstart{
		URL:    composeOrigin,
		APIURL: "http://127.0.0.1:" + strconv.Itoa(c.apiPort),
		dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
			if addr == strings.TrimPrefix(composeOrigin, "http://") {
				addr = published
			}
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		},
	}
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := c.compose(time.Minute, "logs", "--no-color", "--tail", "60")
			t.Logf("--- docker-compose logs ---\n%s", out)
		}
		// Idempotent: the last subtest has normally done it already.
		if out, err := c.compose(3*time.Minute, "down", "-v", "--remove-orphans", "--timeout", "5"); err != nil {
			t.Errorf("docker-compose down: %v\n%s", err, out)
		}
	})
	return c
}

// compose runs docker-compose on the shipped file plus the override.
func (c *composeStack) compose(limit time.Duration, args ...string) (string, error) {
	base := []string{"-p", c.project, "-f", "docker-compose.yml", "-f", composeOverride, "--ansi", "never"}
	return runFor(limit, repoRoot, c.env, c.dc, append(base, args...)...)
}

func (c *composeStack) must(limit time.Duration, args ...string) string {
	c.t.Helper()
	out, err := c.compose(limit, args...)
	if err != nil {
		c.t.Fatalf("docker-compose %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// container returns the id of a service's container.
func (c *composeStack) container(t *testing.T, service string) string {
	t.Helper()
	out, err := c.compose(time.Minute, "ps", "-q", service)
	id := strings.TrimSpace(out)
	if err != nil || id == "" {
		t.Fatalf("no container for %s: %v %s", service, err, out)
	}
	return id
}

func docker(t *testing.T, args ...string) string {
	t.Helper()
	out, err := runFor(2*time.Minute, repoRoot, nil, "docker", args...)
	if err != nil {
		t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(out)
}

// checkImage: the portcullis image runs as the non-root user and answers
// `portcullis version`.
func (c *composeStack) checkImage(t *testing.T) {
	img := "portcullis-compose-test/portcullis:" + c.tag
	if user := docker(t, "image", "inspect", "--format", "{{.Config.User}}", img); user != "nonroot:nonroot" {
		t.Errorf("image user = %q, want nonroot:nonroot", user)
	}
	if out := docker(t, "run", "--rm", img, "version"); !strings.HasPrefix(out, "portcullis ") {
		t.Errorf("portcullis version in the image: %q", out)
	}
	demo := "portcullis-compose-test/demo-app:" + c.tag
	if user := docker(t, "image", "inspect", "--format", "{{.Config.User}}", demo); user != "nonroot:nonroot" {
		t.Errorf("demo-app image user = %q, want nonroot:nonroot", user)
	}
}

// up starts the stack and waits until Kratos has migrated and is ready and
// portcullis is ready; then checks the processes run as the non-root users.
func (c *composeStack) up(t *testing.T) {
	t.Helper()
	c.must(5*time.Minute, "up", "-d", "--no-build")
	c.waitReady(t, "Kratos",
		"http://127.0.0.1:"+strconv.Itoa(c.kratosPub)+"/health/ready",
		"http://127.0.0.1:"+strconv.Itoa(c.kratosAdmin)+"/admin/health/ready")
	migrate := c.container(t, "kratos-migrate")
	if got := docker(t, "inspect", "--format", "{{.State.Status}} {{.State.ExitCode}}", migrate); got != "exited 0" {
		t.Fatalf("kratos-migrate: %s, want exited 0", got)
	}
	c.waitPortcullis(t)
	for service, uid := range map[string]string{"portcullis": "65532", "demo-app": "65532", "kratos": "10000"} {
		top := docker(t, "top", c.container(t, service), "-eo", "pid,uid,args")
		lines := strings.Split(top, "\n")
		if len(lines) < 2 {
			t.Fatalf("%s: docker top: %q", service, top)
		}
		for _, l := range lines[1:] {
			if f := strings.Fields(l); len(f) < 2 || f[1] != uid {
				t.Errorf("%s runs %q, want uid %s", service, l, uid)
			}
		}
	}
}

func (c *composeStack) waitPortcullis(t *testing.T) {
	t.Helper()
	c.waitReady(t, "portcullis", c.qs.APIURL+"/health/ready")
}

// waitReady polls the URLs until each answers 200, for two minutes at most
// (containers starting on a loaded two-core machine are slow).
func (c *composeStack) waitReady(t *testing.T, what string, urls ...string) {
	t.Helper()
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(2 * time.Minute)
	for _, u := range urls {
		for {
			res, err := client.Get(u)
			if err == nil {
				res.Body.Close()
				if res.StatusCode == http.StatusOK {
					break
				}
			}
			if time.Now().After(deadline) {
				out, _ := c.compose(time.Minute, "ps")
				t.Fatalf("%s did not become ready at %s (last: %v)\n%s", what, u, err, out)
			}
			time.Sleep(250 * time.Millisecond)
		}
	}
}

// closed is how a tunnel ended and when.
type closed struct {
	code   ws.StatusCode
	reason string
	err    error
	at     time.Time
}

// watchClose reads rw until the server's Close, in the background, and
// reports it with the time it arrived.
func watchClose(rw io.ReadWriter, within time.Duration) <-chan closed {
	ch := make(chan closed, 1)
	if c, ok := rw.(interface{ SetReadDeadline(time.Time) error }); ok {
		c.SetReadDeadline(time.Now().Add(within))
	}
	go func() {
		for {
			_, _, err := wsutil.ReadServerData(rw)
			var ce wsutil.ClosedError
			if errors.As(err, &ce) {
				ch <- closed{code: ce.Code, reason: ce.Reason, at: time.Now()}
				return
			}
			if err != nil {
				ch <- closed{err: err, at: time.Now()}
				return
			}
		}
	}()
	return ch
}

// journey: registration through the published proxy port, the echo
// WebSocket with the session cookie, ended with 1008 at the demo rule's
// max lifetime (60s); a second identity's tunnel ended by signing out; the
// decision API answering an nginx-style request.
func (c *composeStack) journey(t *testing.T) {
	qs := c.qs
	a := newFormBrowserDialing(t, qs.dial)
	page := a.get(qs.URL + "/")
	if a.last.Path != "/login" || a.last.Query().Get("flow") == "" {
		t.Fatalf("an anonymous browser ended at %s, want the login page with a flow", a.last)
	}
	emailA, _ := register(t, qs, a, page)
	cookieA := a.cookieHeader(qs.URL)

	connA, greeting := dialEcho(t, qs, cookieA, qs.URL)
	opened := time.Now()
	if !strings.Contains(greeting, emailA) {
		t.Errorf("greeting %q does not name %s", greeting, emailA)
	}
	wantEcho(t, connA, "hello through the compose stack")
	lifetime := watchClose(connA, 3*time.Minute)

	// A second identity signs out while its tunnel is open: the
	// kratos-logout rule revokes the session as Kratos confirms the logout,
	// long before the demo rule's re-check (revalidate_every: 15s).
	b := newFormBrowserDialing(t, qs.dial)
	_, pageB := register(t, qs, b, b.get(qs.URL+"/"))
	connB, _ := dialEcho(t, qs, b.cookieHeader(qs.URL), qs.URL)
	revoked := watchClose(connB, 2*time.Minute)
	signedOut := time.Now()
	b.get(attr(t, pageB, `id="logout" href="`))
	if b.last.Path != "/login" {
		t.Errorf("after signing out the browser is at %s, want the login page", b.last)
	}
	res := <-revoked
	if res.err != nil || res.code != ws.StatusPolicyViolation || res.reason != "session revoked" {
		t.Errorf("after signing out the tunnel ended with %d %q (%v), want 1008 \"session revoked\"", res.code, res.reason, res.err)
	}
	// Within a second of the sign-out request (which also follows the
	// redirect to a new login flow); the periodic re-check would take up
	// to 15s.
	if d := res.at.Sub(signedOut); d > time.Second {
		t.Errorf("the signed-out tunnel ended %s after signing out, want within a second", d.Round(time.Millisecond))
	} else {
		t.Logf("the signed-out tunnel ended %s after signing out", d.Round(time.Millisecond))
	}

	// The decision API, asked the way nginx's auth_request asks.
	decide := func(cookie string) *http.Response {
		req, _ := http.NewRequest(http.MethodGet, qs.APIURL+"/decisions", nil)
		req.Header.Set("X-Forwarded-Method", "GET")
		req.Header.Set("X-Forwarded-Proto", "http")
		req.Header.Set("X-Forwarded-Host", strings.TrimPrefix(composeOrigin, "http://"))
		req.Header.Set("X-Forwarded-Uri", "/")
		if cookie != "" {
			req.Header.Set("Cookie", cookie)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("/decisions: %v", err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		return res
	}
	if res := decide(cookieA); res.StatusCode != http.StatusOK || res.Header.Get("X-User-Email") != emailA || res.Header.Get("X-User") == "" {
		t.Errorf("/decisions with the session: %d X-User=%q X-User-Email=%q, want 200 with the identity", res.StatusCode, res.Header.Get("X-User"), res.Header.Get("X-User-Email"))
	}
	if res := decide(""); res.StatusCode != http.StatusUnauthorized {
		t.Errorf("/decisions without a session: %d, want 401", res.StatusCode)
	}

	res = <-lifetime
	if res.err != nil || res.code != ws.StatusPolicyViolation || res.reason != "max lifetime reached" {
		t.Errorf("the tunnel ended with %d %q (%v), want 1008 \"max lifetime reached\"", res.code, res.reason, res.err)
	}
	// max_lifetime is 60s; the upper bound is slack for a loaded machine.
	if d := res.at.Sub(opened); d < 58*time.Second || d > 90*time.Second {
		t.Errorf("the tunnel ended after %s, want at max_lifetime (60s)", d.Round(time.Millisecond))
	} else {
		t.Logf("the tunnel ended with 1008 after %s (max_lifetime 60s)", d.Round(time.Millisecond))
	}
}

func (c *composeStack) kratosURLs() []string {
	return []string{
		"http://127.0.0.1:" + strconv.Itoa(c.kratosPub) + "/health/ready",
		"http://127.0.0.1:" + strconv.Itoa(c.kratosAdmin) + "/admin/health/ready",
	}
}

// signedIn registers a new identity through the proxy and returns its
// browser's Cookie header.
func (c *composeStack) signedIn(t *testing.T) string {
	t.Helper()
	b := newFormBrowserDialing(t, c.qs.dial)
	register(t, c.qs, b, b.get(c.qs.URL+"/"))
	return b.cookieHeader(c.qs.URL)
}

// kratosOutage stops the Kratos container while a tunnel is open: new
// upgrades fail closed (503) while it is down, and the open tunnel follows
// tolerate_unavailable (false in the demo rule): its next re-validation
// cannot reach Kratos and ends it with 1008. Once Kratos is started again
// the same session (kept in the SQLite volume) opens tunnels again.
//
// cookie_session reuses a successful check for cache.ttl (5s, the default
// the quickstart keeps), so the upgrade during the outage is tried once that
// has passed since the last check that reached Kratos.
func (c *composeStack) kratosOutage(t *testing.T) {
	const cacheTTL = 5 * time.Second
	qs := c.qs
	cookie := c.signedIn(t)
	conn, _ := dialEcho(t, qs, cookie, qs.URL)
	checked := time.Now()
	ended := watchClose(conn, 2*time.Minute)

	c.must(2*time.Minute, "stop", "kratos")
	stopped := time.Now()
	time.Sleep(time.Until(checked.Add(cacheTTL + time.Second)))
	if status := dialStatus(t, qs, cookie, qs.URL); status != http.StatusServiceUnavailable {
		t.Errorf("upgrade while Kratos is down (past the session cache's ttl): handshake status %d, want 503", status)
	}
	res := <-ended
	if res.err != nil || res.code != ws.StatusPolicyViolation || res.reason != "session could not be revalidated" {
		t.Errorf("the open tunnel ended with %d %q (%v), want 1008 \"session could not be revalidated\"", res.code, res.reason, res.err)
	}
	// Bound: one re-validation interval (15s), plus slack for a loaded machine.
	if d := res.at.Sub(stopped); d > 25*time.Second {
		t.Errorf("the tunnel ended %s after Kratos stopped, want within revalidate_every (15s)", d.Round(time.Millisecond))
	}

	c.must(2*time.Minute, "start", "kratos")
	c.waitReady(t, "Kratos, started again", c.kratosURLs()...)
	conn, _ = dialEcho(t, qs, cookie, qs.URL)
	wantEcho(t, conn, "after the outage")
}

// portcullisRestart restarts the portcullis container with tunnels open:
// each client gets 1001, and reconnects once portcullis is back.
func (c *composeStack) portcullisRestart(t *testing.T) {
	qs := c.qs
	cookie := c.signedIn(t)
	var ended []<-chan closed
	for range 3 {
		conn, _ := dialEcho(t, qs, cookie, qs.URL)
		ended = append(ended, watchClose(conn, 2*time.Minute))
	}
	c.must(3*time.Minute, "restart", "portcullis")
	for i, ch := range ended {
		if res := <-ch; res.err != nil || res.code != ws.StatusGoingAway {
			t.Errorf("tunnel %d ended with %d %q (%v), want 1001", i, res.code, res.reason, res.err)
		}
	}
	c.waitPortcullis(t)
	conn, greeting := dialEcho(t, qs, cookie, qs.URL)
	if greeting == "" {
		t.Error("no greeting after reconnecting")
	}
	wantEcho(t, conn, "after the restart")
}

// down runs `docker-compose down -v` and checks that no container, network
// or volume of the project is left (and that the same queries found them
// before, so the check can fail).
func (c *composeStack) down(t *testing.T) {
	label := "label=com.docker.compose.project=" + c.project
	left := func() map[string]string {
		return map[string]string{
			"containers": docker(t, "ps", "-a", "-q", "--filter", label),
			"networks":   docker(t, "network", "ls", "-q", "--filter", label) + docker(t, "network", "ls", "-q", "--filter", "name="+c.project),
			"volumes":    docker(t, "volume", "ls", "-q", "--filter", label) + docker(t, "volume", "ls", "-q", "--filter", "name="+c.project),
		}
	}
	for kind, ids := range left() {
		if ids == "" {
			t.Fatalf("before down: no %s found for project %s; the check below would be vacuous", kind, c.project)
		}
	}
	c.must(3*time.Minute, "down", "-v", "--timeout", "10")
	for kind, ids := range left() {
		if ids != "" {
			t.Errorf("after down -v, %s are left: %s", kind, strings.ReplaceAll(ids, "\n", " "))
		}
	}
}
