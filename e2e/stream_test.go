package e2e

import (
	"bufio"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-proxy/portcullis/testsupport/servertest"
)

// TestQuickstartClockStreamRevokedInKratos: the demo clock's event stream,
// opened with a real Kratos session, ticks with the identity; the session
// revoked in Kratos's admin API (a revocation portcullis cannot see) is
// found by the stream's re-check, which ends it with the final event.
func TestQuickstartClockStreamRevokedInKratos(t *testing.T) {
	qs := startQuickstart(t, quickstartOptions{RevalidateEvery: time.Second})
	b := newFormBrowser(t)
	email, _ := register(t, qs, b, b.get(qs.URL+"/"))
	cookie := b.cookieHeader(qs.URL)

	req, _ := http.NewRequest(http.MethodGet, qs.URL+"/clock/events", nil)
	req.Header.Set("Cookie", cookie)
	req.Header.Set("Accept", "text/event-stream")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("clock stream: %d %s", res.StatusCode, res.Header.Get("Content-Type"))
	}
	lines := make(chan string, 256)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(res.Body)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	next := func(within time.Duration) (string, bool) {
		select {
		case l, ok := <-lines:
			return l, ok
		case <-time.After(within):
			t.Fatalf("nothing on the stream for %v", within)
			return "", false
		}
	}
	for {
		l, ok := next(10 * time.Second)
		if !ok {
			t.Fatal("the stream ended before its first tick")
		}
		if strings.HasPrefix(l, "data: ") {
			if !strings.Contains(l, email) {
				t.Errorf("tick %q does not name %s", l, email)
			}
			break
		}
	}

	// Revoke every session of the identity in Kratos itself.
	wreq, _ := http.NewRequest(http.MethodGet, qs.KratosPublicURL+"/sessions/whoami", nil)
	wreq.Header.Set("Cookie", cookie)
	wres, err := http.DefaultClient.Do(wreq)
	if err != nil {
		t.Fatal(err)
	}
	var who struct {
		Identity struct {
			ID string `json:"id"`
		} `json:"identity"`
	}
	err = json.NewDecoder(wres.Body).Decode(&who)
	wres.Body.Close()
	if err != nil || who.Identity.ID == "" {
		t.Fatalf("whoami: %v", err)
	}
	dreq, _ := http.NewRequest(http.MethodDelete, qs.KratosAdminURL+"/admin/identities/"+who.Identity.ID+"/sessions", nil)
	if st, _ := servertest.Fetch(t, dreq); st != http.StatusNoContent {
		t.Fatalf("revoking in Kratos: %d", st)
	}

	var event, data string
	deadline := time.Now().Add(30 * time.Second) // re-check every 1 s; generous for a loaded machine
	for time.Now().Before(deadline) {
		l, ok := next(30 * time.Second)
		if !ok {
			break
		}
		switch {
		case strings.HasPrefix(l, "event: "):
			event = strings.TrimPrefix(l, "event: ")
		case strings.HasPrefix(l, "data: "):
			data = strings.TrimPrefix(l, "data: ")
		}
	}
	if event != "portcullis-close" || !strings.Contains(data, `"reason":"session_revoked"`) {
		t.Errorf("the stream ended with event %q data %q, want portcullis-close for session_revoked", event, data)
	}
}
