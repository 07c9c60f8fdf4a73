package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/chromedp/chromedp"
)

// The echo page's handling of the tunnel's life, as TestBrowserJourney
// drives it: a countdown to the rule's max lifetime while open, input only
// while open, nothing typed carried over a reconnect, and, when a
// reconnect is refused because the session is gone, "signed out — sign in
// again" with the way back.

// checkCountdown checks, with the tunnel just open, that the page counts
// down from the rule's lifetime.
func (b *chromiumSession) checkCountdown(lifetime time.Duration) {
	b.t.Helper()
	secs := int(lifetime / time.Second)
	if got := b.text(chromedp.ID("lifetime")); !strings.Contains(got, fmt.Sprintf("Max lifetime %d s", secs)) {
		b.t.Errorf("the page shows %q, want the rule's max lifetime of %d s", got, secs)
	}
	b.poll("the countdown runs",
		fmt.Sprintf(`(m => m && +m[1] >= 1 && +m[1] < %d)(document.getElementById("countdown").textContent.match(/closes it in (\d+) s/))`, secs), lifetime)
	b.inputEnabled("while the tunnel is open", true)
}

// inputEnabled checks the message box and the Send button.
func (b *chromiumSession) inputEnabled(when string, want bool) {
	b.t.Helper()
	type inputState struct {
		Message, Send bool
		Value         string
	}
	state, err := chromedp.Run(b.ctx, chromedp.Evaluate[inputState](`({Message: !document.getElementById("message").disabled, Send: !document.getElementById("send").disabled, Value: document.getElementById("message").value})`))
	if err != nil {
		b.fail("read the input's state", err)
	}
	if state.Message != want || state.Send != want {
		b.t.Errorf("%s: message box enabled %v, Send enabled %v; want %v", when, state.Message, state.Send, want)
	}
	if !want && state.Value != "" {
		b.t.Errorf("%s: the message box still holds %q", when, state.Value)
	}
}

// checkClosedTunnelUI runs after the tunnel's first close (a draft was
// typed and not sent): input disabled and cleared; Reconnect opens a new
// tunnel that does not send the draft; once the session is revoked, a
// reconnect fails and the page says "signed out — sign in again".
func (b *chromiumSession) checkClosedTunnelUI(qs *quickstart, email, draft string, lifetime time.Duration) {
	b.t.Helper()
	b.inputEnabled("after the tunnel ended", false)
	if !b.hidden("signed-out") {
		b.t.Error("the page says signed out while the session is valid")
	}

	b.do("reconnect", chromedp.Click(chromedp.ID("reconnect")))
	b.poll("the new tunnel opens", `document.getElementById("status").textContent === "open"`, 20*time.Second)
	b.inputEnabled("after reconnecting", true)
	const next = "after reconnect"
	b.do("send after reconnecting", chromedp.SendKeys(chromedp.ID("message"), next), chromedp.Click(chromedp.ID("send")))
	b.poll("the message is echoed",
		fmt.Sprintf(`[...document.querySelectorAll("#log li.echo")].some(li => li.textContent === "← " + %q)`, next), 10*time.Second)
	leaked, err := chromedp.Run(b.ctx, chromedp.Evaluate[bool](fmt.Sprintf(`[...document.querySelectorAll("#log li")].some(li => li.textContent.includes(%q))`, draft)))
	if err != nil {
		b.fail("read the log", err)
	}
	if leaked {
		b.t.Errorf("the draft %q typed before the close was sent after reconnecting", draft)
	}
	b.poll("the second tunnel ends", `!document.getElementById("closed").hidden`, lifetime+30*time.Second)

	revokeSessions(b, qs, email)
	b.do("reconnect without a session", chromedp.Click(chromedp.ID("reconnect")))
	b.poll("the page says signed out", `!document.getElementById("signed-out").hidden`, 20*time.Second)
	if got := b.text(chromedp.ID("signed-out")); got != "Signed out — sign in again" {
		b.t.Errorf("the notice reads %q", got)
	}
	href, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](`document.getElementById("sign-in").getAttribute("href")`))
	if err != nil {
		b.fail("read the sign-in link", err)
	}
	if !strings.HasPrefix(href, "/login?return_to="+url.QueryEscape(qs.URL+"/")) {
		b.t.Errorf("the sign-in link is %q, want /login?return_to=<this page>", href)
	}
	if who := b.text(chromedp.ID("who")); who != "Signed out" {
		b.t.Errorf("the page still says %q", who)
	}
	if !b.hidden("reconnect") {
		b.t.Error("Reconnect is still offered without a session")
	}
	b.inputEnabled("signed out", false)
}

// hidden reports whether the element is not displayed (as rendered, not
// only its hidden attribute).
func (b *chromiumSession) hidden(id string) bool {
	b.t.Helper()
	h, err := chromedp.Run(b.ctx, chromedp.Evaluate[bool](fmt.Sprintf(`getComputedStyle(document.getElementById(%q)).display === "none"`, id)))
	if err != nil {
		b.fail("read #"+id, err)
	}
	return h
}

// revokeSessions ends every session of the identity with Kratos's admin
// API, as an operator would.
func revokeSessions(b *chromiumSession, qs *quickstart, email string) {
	b.t.Helper()
	res, err := http.Get(qs.KratosAdminURL + "/admin/identities?credentials_identifier=" + url.QueryEscape(email))
	if err != nil {
		b.t.Fatal(err)
	}
	var ids []struct{ ID string }
	err = json.NewDecoder(res.Body).Decode(&ids)
	res.Body.Close()
	if err != nil || len(ids) != 1 {
		b.t.Fatalf("finding the identity %s: %v %v", email, ids, err)
	}
	req, _ := http.NewRequest(http.MethodDelete, qs.KratosAdminURL+"/admin/identities/"+ids[0].ID+"/sessions", nil)
	res, err = http.DefaultClient.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusNoContent {
		b.t.Fatalf("revoking the sessions: %d", res.StatusCode)
	}
}
