package kratostest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"testing"
	"time"

	kratos "github.com/ory/kratos-client-go"
)

// Identity is an identity registered in Kratos together with the session the
// registration created.
type Identity struct {
	// Email is the identity's email trait (and password identifier).
	Email string
	// Password is the identity's password.
	Password string
	// IdentityID is Kratos's id of the identity.
	IdentityID string
	// SessionID is Kratos's id of the session the registration created.
	SessionID string
	// SessionToken is set by the API (native) flow.
	SessionToken string
	// Cookie is set by the browser flow: the ory_kratos_session cookie.
	Cookie *http.Cookie
	// ExpiresAt is when Kratos says the session expires.
	ExpiresAt time.Time
}

// CookieHeader renders the session cookie as a Cookie request header value.
func (id Identity) CookieHeader() string {
	if id.Cookie == nil {
		return ""
	}
	return (&http.Cookie{Name: id.Cookie.Name, Value: id.Cookie.Value}).String()
}

// registrationResult is the part of Kratos's successful registration answer
// the tests need.
type registrationResult struct {
	SessionToken string `json:"session_token"`
	Session      struct {
		ID        string    `json:"id"`
		ExpiresAt time.Time `json:"expires_at"`
	} `json:"session"`
	Identity struct {
		ID string `json:"id"`
	} `json:"identity"`
}

var httpClient = &http.Client{Timeout: 15 * time.Second}

// RegisterAPI registers a new identity through the native (API) registration
// flow and returns it with its session token.
func (k *Kratos) RegisterAPI(tb testing.TB) Identity {
	tb.Helper()
	return mustRegister(tb, "API", k.Register)
}

// Register is [Kratos.RegisterAPI] for code that runs outside a test (the
// bench harness): a failed registration is its error.
func (k *Kratos) Register() (Identity, error) {
	id := newIdentity()
	var flow struct {
		ID string `json:"id"`
	}
	if err := k.doJSON(httpClient, http.MethodGet, k.publicURL+"/self-service/registration/api", nil, http.StatusOK, &flow); err != nil {
		return id, fmt.Errorf("create flow: %w", err)
	}
	res, err := k.submitRegistration(httpClient, flow.ID, id, nil)
	if err != nil {
		return id, err
	}
	if res.SessionToken == "" {
		return id, fmt.Errorf("registration returned no session token (is the session hook configured?)")
	}
	id.IdentityID, id.SessionID, id.SessionToken, id.ExpiresAt =
		res.Identity.ID, res.Session.ID, res.SessionToken, res.Session.ExpiresAt
	return id, nil
}

// RegisterBrowser registers a new identity through the browser registration
// flow, carrying the CSRF cookie and token as a browser would, and returns it
// with its session cookie.
func (k *Kratos) RegisterBrowser(tb testing.TB) Identity {
	tb.Helper()
	return mustRegister(tb, "browser", k.registerBrowser)
}

// mustRegister returns the identity register made, or fails tb with the
// kind of flow that did not complete.
func mustRegister(tb testing.TB, kind string, register func() (Identity, error)) Identity {
	tb.Helper()
	id, err := register()
	if err != nil {
		tb.Fatalf("kratos %s registration: %v", kind, err)
	}
	return id
}

// submitRegistration completes the registration flow flowID with id's
// email and password through client; fields are added to the body (the
// browser flow's csrf_token).
func (k *Kratos) submitRegistration(client *http.Client, flowID string, id Identity, fields map[string]any) (registrationResult, error) {
	body := map[string]any{
		"method":   "password",
		"password": id.Password,
		"traits":   map[string]any{"email": id.Email},
	}
	maps.Copy(body, fields)
	var res registrationResult
	u := k.publicURL + "/self-service/registration?flow=" + url.QueryEscape(flowID)
	if err := k.doJSON(client, http.MethodPost, u, body, http.StatusOK, &res); err != nil {
		return res, fmt.Errorf("submit flow: %w", err)
	}
	return res, nil
}

func (k *Kratos) registerBrowser() (Identity, error) {
	id := newIdentity()
	jar, err := cookiejar.New(nil)
	if err != nil {
		return id, err
	}
	client := &http.Client{
		Jar:     jar,
		Timeout: httpClient.Timeout,
		// Browser flows answer JSON when asked for it; a redirect would
		// mean Kratos wants a UI, which these tests have none of.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	var flow struct {
		ID string `json:"id"`
		UI struct {
			Nodes []struct {
				Attributes struct {
					Name  string `json:"name"`
					Value any    `json:"value"`
				} `json:"attributes"`
			} `json:"nodes"`
		} `json:"ui"`
	}
	if err := k.doJSON(client, http.MethodGet, k.publicURL+"/self-service/registration/browser", nil, http.StatusOK, &flow); err != nil {
		return id, fmt.Errorf("create flow: %w", err)
	}
	csrf := ""
	for _, n := range flow.UI.Nodes {
		if n.Attributes.Name == "csrf_token" {
			csrf, _ = n.Attributes.Value.(string)
		}
	}
	if csrf == "" {
		return id, fmt.Errorf("flow %s carries no csrf_token", flow.ID)
	}
	res, err := k.submitRegistration(client, flow.ID, id, map[string]any{"csrf_token": csrf})
	if err != nil {
		return id, err
	}
	pub, _ := url.Parse(k.publicURL)
	for _, c := range jar.Cookies(pub) {
		if c.Name == SessionCookie {
			id.Cookie = c
		}
	}
	if id.Cookie == nil {
		return id, fmt.Errorf("registration set no %s cookie", SessionCookie)
	}
	id.IdentityID, id.SessionID, id.ExpiresAt = res.Identity.ID, res.Session.ID, res.Session.ExpiresAt
	return id, nil
}

// RevokeSession disables one session through the admin API.
func (k *Kratos) RevokeSession(tb testing.TB, sessionID string) {
	tb.Helper()
	res, err := k.Admin().IdentityAPI.DisableSession(context.Background(), sessionID).Execute()
	adminDone(tb, "revoke session "+sessionID, res, err)
}

// RevokeIdentitySessions revokes every session of an identity through the
// admin API.
func (k *Kratos) RevokeIdentitySessions(tb testing.TB, identityID string) {
	tb.Helper()
	res, err := k.Admin().IdentityAPI.DeleteIdentitySessions(context.Background(), identityID).Execute()
	adminDone(tb, "revoke sessions of "+identityID, res, err)
}

// SetMetadataPublic replaces an identity's public metadata through the
// admin API, as an operator would: whoami shows it at once.
func (k *Kratos) SetMetadataPublic(tb testing.TB, identityID string, metadata map[string]any) {
	tb.Helper()
	_, res, err := k.Admin().IdentityAPI.PatchIdentity(context.Background(), identityID).
		JsonPatch([]kratos.JsonPatch{{Op: "add", Path: "/metadata_public", Value: metadata}}).Execute()
	adminDone(tb, "set metadata_public of "+identityID, res, err)
}

// adminDone fails tb, naming what, when an admin API call got no success,
// and closes the answer's body.
func adminDone(tb testing.TB, what string, res *http.Response, err error) {
	tb.Helper()
	if err != nil {
		tb.Fatalf("kratos %s: %v", what, err)
	}
	res.Body.Close()
}

// Admin returns a client of Kratos's admin API.
func (k *Kratos) Admin() *kratos.APIClient {
	cfg := kratos.NewConfiguration()
	cfg.Servers = kratos.ServerConfigurations{{URL: k.adminURL}}
	cfg.HTTPClient = httpClient
	return kratos.NewAPIClient(cfg)
}

// Public returns a client of Kratos's public (frontend) API.
func (k *Kratos) Public() *kratos.APIClient {
	cfg := kratos.NewConfiguration()
	cfg.Servers = kratos.ServerConfigurations{{URL: k.publicURL}}
	cfg.HTTPClient = httpClient
	return kratos.NewAPIClient(cfg)
}

func newIdentity() Identity {
	return Identity{
		Email:    "user-" + randomHex(6) + "@portcullis.test",
		Password: "pw-" + randomHex(12),
	}
}

// doJSON sends body (if any) as JSON, expects the status and decodes the
// answer into out.
func (k *Kratos) doJSON(client *http.Client, method, u string, body any, want int, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, u, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := client.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if res.StatusCode != want {
		return fmt.Errorf("%s %s: status %d, want %d: %s", method, u, res.StatusCode, want, truncate(raw, 600))
	}
	return json.Unmarshal(raw, out)
}

func truncate(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "..."
	}
	return string(b)
}
