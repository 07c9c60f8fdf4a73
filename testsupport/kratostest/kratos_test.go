package kratostest

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"
)

var shared = &Shared{}

func TestMain(m *testing.M) { RunMain(m, shared) }

// whoami asks Kratos's public API about a credential and returns the status
// and the session's identity id.
func whoami(t *testing.T, k *Kratos, cookie, token string) (int, string) {
	t.Helper()
	req := k.Public().FrontendAPI.ToSession(context.Background())
	if cookie != "" {
		req = req.Cookie(cookie)
	}
	if token != "" {
		req = req.XSessionToken(token)
	}
	sess, res, err := req.Execute()
	if res == nil {
		t.Fatalf("whoami: %v", err)
	}
	res.Body.Close()
	if sess == nil || sess.Identity == nil {
		return res.StatusCode, ""
	}
	return res.StatusCode, sess.Identity.Id
}

func TestRegisterAPIAndRevoke(t *testing.T) {
	k := shared.Get(t)
	id := k.RegisterAPI(t)
	if id.SessionToken == "" || id.IdentityID == "" || id.SessionID == "" {
		t.Fatalf("incomplete identity: token set=%v identity=%q session=%q", id.SessionToken != "", id.IdentityID, id.SessionID)
	}
	if !id.ExpiresAt.After(time.Now()) {
		t.Errorf("ExpiresAt = %v, want in the future", id.ExpiresAt)
	}
	if status, who := whoami(t, k, "", id.SessionToken); status != http.StatusOK || who != id.IdentityID {
		t.Fatalf("whoami(token) = %d %q, want 200 %q", status, who, id.IdentityID)
	}
	k.RevokeSession(t, id.SessionID)
	if status, _ := whoami(t, k, "", id.SessionToken); status != http.StatusUnauthorized {
		t.Errorf("whoami after revoke = %d, want 401", status)
	}
}

func TestRegisterBrowserAndRevokeAll(t *testing.T) {
	k := shared.Get(t)
	id := k.RegisterBrowser(t)
	if id.Cookie == nil || id.Cookie.Name != SessionCookie {
		t.Fatalf("cookie = %v, want %s", id.Cookie, SessionCookie)
	}
	if status, who := whoami(t, k, id.CookieHeader(), ""); status != http.StatusOK || who != id.IdentityID {
		t.Fatalf("whoami(cookie) = %d %q, want 200 %q", status, who, id.IdentityID)
	}
	k.RevokeIdentitySessions(t, id.IdentityID)
	if status, _ := whoami(t, k, id.CookieHeader(), ""); status != http.StatusUnauthorized {
		t.Errorf("whoami after revoking all = %d, want 401", status)
	}
}

func TestStopAndRestart(t *testing.T) {
	k := Start(t, Options{})
	before := k.RegisterAPI(t)
	k.Stop()
	if k.Running() {
		t.Fatal("Running after Stop")
	}
	if _, err := http.Get(k.PublicURL() + "/health/alive"); err == nil {
		t.Fatal("public API answers after Stop")
	}
	if err := k.Restart(); err != nil {
		t.Fatal(err)
	}
	// The database is in memory: the old session is gone, new ones work.
	if status, _ := whoami(t, k, "", before.SessionToken); status != http.StatusUnauthorized {
		t.Errorf("whoami(old token) after restart = %d, want 401", status)
	}
	after := k.RegisterAPI(t)
	if status, _ := whoami(t, k, "", after.SessionToken); status != http.StatusOK {
		t.Errorf("whoami(new token) = %d, want 200", status)
	}
}

func TestMissingBinary(t *testing.T) {
	t.Setenv(EnvBinary, "/nonexistent/kratos")
	_, err := New(Options{})
	if err == nil {
		t.Fatal("New with a missing binary succeeded")
	}
	if want := "scripts/build-kratos.sh"; !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not mention %s", err, want)
	}
}
