package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/portcullis-proxy/portcullis/testsupport/proctest"
)

// EnvChromium names the environment variable that overrides the browser
// binary the browser test drives.
const EnvChromium = "PORTCULLIS_CHROMIUM"

// screenshotDir is where the browser test leaves its screenshots (ignored
// by git).
var screenshotDir = filepath.Join(repoRoot, ".build", "e2e")

// TestBrowserJourney is the journey of the guides in a real headless
// Chromium: open the demo app through portcullis, get sent to the login
// page, go on to registration, register, land back on the app, see the
// WebSocket echo what is typed, and see the page report the tunnel's end
// with close code 1008 and its reason when the rule's max lifetime passes
// (counted down on the page; input disabled once closed), reconnect, and be
// told "signed out — sign in again" when the session is gone. The
// registration page, the closed tunnel and the final page are saved under
// .build/e2e/.
func TestBrowserJourney(t *testing.T) {
	chromium := chromiumPath(t)
	lifetime := 5 * time.Second
	qs := startQuickstart(t, quickstartOptions{MaxLifetime: lifetime, ClockLifetime: lifetime})

	b := newChromium(t, chromium)

	// 1 and 2. The app, through portcullis: no session, so the login page;
	// on to registration.
	b.openRegistration(qs)
	b.screenshot("browser-registration.png")

	// 3. Register: Kratos signs the new identity in and sends the browser
	// back to the app, whose page opens the WebSocket.
	email := fmt.Sprintf("chromium-%d@example.com", time.Now().UnixNano())
	b.register(email)
	if loc := b.location(); loc != qs.URL+"/" {
		t.Fatalf("after registering the browser is at %s, want %s/", loc, qs.URL)
	}
	if who := b.text(chromedp.ID("who")); !strings.Contains(who, email) {
		t.Errorf("the page says %q, want it to name %s", who, email)
	}
	b.poll("the WebSocket opens", `document.getElementById("status").textContent === "open"`, 20*time.Second)
	b.checkCountdown(lifetime)
	b.poll("the app greets the identity over the tunnel",
		fmt.Sprintf(`[...document.querySelectorAll("#log li.echo")].some(li => li.textContent.includes(%q))`, email), 10*time.Second)

	// 4. What is typed comes back.
	const typed = "hello from chromium"
	b.do("type a message", chromedp.SendKeys(chromedp.ID("message"), typed), chromedp.Click(chromedp.ID("send")))
	b.poll("the message is echoed",
		fmt.Sprintf(`[...document.querySelectorAll("#log li.echo")].some(li => li.textContent === "← " + %q)`, typed), 10*time.Second)

	// 5. The rule's max lifetime ends the tunnel; the page shows the close.
	// A draft typed and not sent goes with the tunnel.
	const draft = "unsent draft"
	b.do("type a draft", chromedp.SendKeys(chromedp.ID("message"), draft))
	b.poll("the page reports the tunnel's end", `!document.getElementById("closed").hidden`, lifetime+30*time.Second)
	code, reason := b.text(chromedp.ID("close-code")), b.text(chromedp.ID("close-reason"))
	if code != "1008" || reason != "max lifetime reached" {
		t.Errorf("the page shows close code %q reason %q, want 1008 \"max lifetime reached\"", code, reason)
	}
	if status := b.text(chromedp.ID("status")); status != "closed" {
		t.Errorf("status = %q, want closed", status)
	}

	b.screenshot("browser-journey-closed.png")

	// 5b. While signed in: the clock page's event stream ticks under the session, and the
	// rule's max lifetime ends it with the final event the page shows.
	b.do("open the clock", chromedp.Navigate(qs.URL+"/clock"), chromedp.WaitVisible(chromedp.ID("clock")))
	b.poll("the clock ticks", fmt.Sprintf(`document.getElementById("clock").textContent.includes(%q)`, email), 20*time.Second)
	b.poll("the page shows the stream's final event", `!document.getElementById("ended").hidden`, lifetime+30*time.Second)
	if reason := b.text(chromedp.ID("end-reason")); reason != "max lifetime reached" {
		t.Errorf("the clock page shows reason %q, want \"max lifetime reached\"", reason)
	}
	t.Logf("clock page: %s", b.screenshot("browser-clock.png"))
	// Back to the echo page, in the state step 6 starts from: the tunnel
	// ended at its max lifetime, the draft typed.
	b.do("back to the echo", chromedp.Navigate(qs.URL+"/"), chromedp.WaitVisible(chromedp.ID("status")))
	b.poll("the new tunnel opens", `document.getElementById("status").textContent === "open"`, 20*time.Second)
	b.do("type the draft again", chromedp.SendKeys(chromedp.ID("message"), draft))
	b.poll("the new tunnel ends", `!document.getElementById("closed").hidden`, lifetime+30*time.Second)

	// 6. Reconnect, then a reconnect without a session.
	b.checkClosedTunnelUI(qs, email, draft, lifetime)

	path := b.screenshot("browser-journey.png")
	t.Logf("final page: %s", path)
}

// chromiumSession runs the steps of one browser journey and, when a step
// fails, reports where the browser was and what it showed.
type chromiumSession struct {
	t      *testing.T
	ctx    context.Context
	output *proctest.Buffer
}

// openRegistration opens the app through portcullis without a session,
// which must lead to the login page with a Kratos flow, and follows its
// link to the registration page.
func (b *chromiumSession) openRegistration(qs *quickstart) {
	b.t.Helper()
	b.do("open the app", chromedp.Navigate(qs.URL+"/"),
		chromedp.WaitVisible(chromedp.CSS(`#login input[name="identifier"]`)))
	if loc := b.location(); !strings.HasPrefix(loc, qs.URL+"/login?flow=") {
		b.t.Fatalf("the app led to %s, want the login page with a Kratos flow", loc)
	}
	b.do("go to registration", chromedp.Click(chromedp.ID("other-flow")),
		chromedp.WaitVisible(chromedp.CSS(`#registration input[name="traits.email"]`)))
	if loc := b.location(); !strings.HasPrefix(loc, qs.URL+"/registration?flow=") {
		b.t.Fatalf("the registration link led to %s", loc)
	}
}

// register submits the registration page's password form for email and
// waits for the app's page, to which Kratos sends the browser back with
// the new identity signed in.
func (b *chromiumSession) register(email string) {
	b.t.Helper()
	b.do("register",
		chromedp.SendKeys(chromedp.CSS(`input[name="traits.email"]`), email),
		chromedp.SendKeys(chromedp.CSS(`input[name="password"]`), "correct horse battery staple"),
		chromedp.Click(chromedp.CSS(`button[name="method"][value="password"]`)),
		chromedp.WaitVisible(chromedp.ID("status")))
}

func (b *chromiumSession) do(step string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, actions...); err != nil {
		b.fail(step, err)
	}
}

func (b *chromiumSession) poll(step, predicate string, within time.Duration) {
	b.t.Helper()
	if _, err := chromedp.Run(b.ctx, chromedp.Poll[chromedp.Void](predicate,
		chromedp.WithPollingTimeout(within), chromedp.WithPollingInterval(100*time.Millisecond))); err != nil {
		b.fail(step, err)
	}
}

func (b *chromiumSession) text(sel chromedp.ID) string {
	b.t.Helper()
	s, err := chromedp.Run(b.ctx, chromedp.Text(sel))
	if err != nil {
		b.fail("read "+string(sel), err)
	}
	return strings.TrimSpace(s)
}

func (b *chromiumSession) location() string {
	b.t.Helper()
	loc, err := chromedp.Run(b.ctx, chromedp.Location())
	if err != nil {
		b.fail("read the location", err)
	}
	return loc
}

// screenshot saves the whole page under .build/e2e and returns the path.
func (b *chromiumSession) screenshot(name string) string {
	b.t.Helper()
	png, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Fatalf("screenshot: %v", err)
	}
	if err := os.MkdirAll(screenshotDir, 0o755); err != nil {
		b.t.Fatal(err)
	}
	path := filepath.Join(screenshotDir, name)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
	return path
}

// fail ends the test with the step that failed, the page's URL and text,
// a screenshot, and the browser's output.
func (b *chromiumSession) fail(step string, err error) {
	b.t.Helper()
	diag, cancel := context.WithTimeout(context.WithoutCancel(b.ctx), 10*time.Second)
	defer cancel()
	loc, _ := chromedp.Run(diag, chromedp.Location())
	body, _ := chromedp.Run(diag, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
	shot := ""
	if png, e := chromedp.Run(diag, chromedp.FullScreenshot(100)); e == nil && os.MkdirAll(screenshotDir, 0o755) == nil {
		shot = filepath.Join(screenshotDir, "browser-journey-failure.png")
		_ = os.WriteFile(shot, png, 0o644)
	}
	b.t.Fatalf("step %q failed: %v\nlocation: %s\nscreenshot: %s\npage text:\n%s\n--- chromium output ---\n%s",
		step, err, loc, shot, body, b.output)
}

// chromiumPath finds the browser: $PORTCULLIS_CHROMIUM, else chromium (as
// Debian names it) or its other usual names. Missing, it fails the test
// with the install hint; under -short the test is skipped.
func chromiumPath(t *testing.T) string {
	t.Helper()
	if p := os.Getenv(EnvChromium); p != "" {
		return p
	}
	return mustTool(t, "run scripts/install-test-deps.sh (apt-get install chromium) or set "+EnvChromium,
		"chromium", "chromium-browser", "google-chrome")
}

// TestBrowserSignOutClosesOtherTab is the quickstart's promise in a real
// headless Chromium: a signed-in visitor has the app open in one tab, with
// its WebSocket; signing out in a second tab closes the first tab's tunnel
// at once — 1008 "session revoked" — because the quickstart's logout rule
// revokes the session as Kratos confirms the logout. The rule's re-check
// (15s) and max lifetime (60s) are far off, so nothing else can explain a
// close within the bound.
func TestBrowserSignOutClosesOtherTab(t *testing.T) {
	chromium := chromiumPath(t)
	qs := startQuickstart(t, quickstartOptions{})

	// A background tab must keep running its page's script.
	first := newChromium(t, chromium,
		chromedp.Flag("disable-background-timer-throttling", true),
		chromedp.Flag("disable-renderer-backgrounding", true))
	ctx := first.ctx

	// Tab 1: register and land on the app with its tunnel open.
	first.openRegistration(qs)
	first.register(fmt.Sprintf("chromium-tabs-%d@example.com", time.Now().UnixNano()))
	first.poll("the WebSocket opens", `document.getElementById("status").textContent === "open"`, 20*time.Second)

	// Tab 2, same browser and so the same session: open the app, sign out.
	tab2, cancelTab2 := chromedp.NewContext(ctx)
	defer cancelTab2()
	second := &chromiumSession{t: t, ctx: tab2, output: first.output}
	second.do("open the app in a second tab", chromedp.Navigate(qs.URL+"/"), chromedp.WaitVisible(chromedp.ID("logout")))
	start := time.Now()
	second.do("sign out in the second tab", chromedp.Click(chromedp.ID("logout")))

	// Tab 1's page reports its tunnel's end: the logout, not a deadline.
	first.poll("the first tab's tunnel closes", `!document.getElementById("closed").hidden`, 10*time.Second)
	took := time.Since(start)
	code, reason := first.text(chromedp.ID("close-code")), first.text(chromedp.ID("close-reason"))
	if code != "1008" || reason != "session revoked" {
		t.Errorf("the first tab shows close code %q reason %q, want 1008 \"session revoked\"", code, reason)
	}
	t.Logf("sign-out click in tab 2 to tab 1's close seen by its page: %v", took)
	first.screenshot("browser-signed-out-elsewhere.png")
}

// newChromium starts a headless Chromium with a fresh profile and the flags
// every browser test uses, plus extra, and returns its first tab, bounded to
// 3 minutes; the browser stops when the test ends.
func newChromium(t *testing.T, chromium string, extra ...chromedp.ExecAllocatorOption) *chromiumSession {
	t.Helper()
	out := proctest.NewBuffer(64 << 10)
	opts := append([]chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromium),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1000, 1100),
		chromedp.CombinedOutput(out),
	}, extra...)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	bctx, cancelBrowser := chromedp.NewContext(actx)
	ctx, cancel := context.WithTimeout(bctx, 3*time.Minute)
	t.Cleanup(func() { cancel(); cancelBrowser(); cancelAlloc() })
	return &chromiumSession{t: t, ctx: ctx, output: out}
}
