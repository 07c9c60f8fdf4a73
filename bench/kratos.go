package main

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/portcullis-proxy/portcullis/testsupport/kratostest"
)

// ensureKratos builds Ory Kratos with scripts/build-kratos.sh when the
// binary is missing (a few minutes the first time).
func ensureKratos(root string) error {
	if st, err := os.Stat(kratostest.BinaryPath()); err == nil && !st.IsDir() {
		return nil
	}
	fmt.Fprintln(os.Stderr, "bench: building Ory Kratos (scripts/build-kratos.sh)")
	cmd := exec.Command(filepath.Join(root, "scripts", "build-kratos.sh"))
	cmd.Dir = root
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	return cmd.Run()
}

// kratosSession is a session registered in Kratos through the API flow.
type kratosSession struct {
	ID        string
	Token     string
	ExpiresAt time.Time
}

// registerIdentity registers a new identity with the native (API)
// registration flow and returns the session the registration created.
func registerIdentity(k *kratostest.Kratos) (kratosSession, error) {
	client := &http.Client{Timeout: 15 * time.Second}
	var flow struct {
		ID string `json:"id"`
	}
	if err := doJSON(client, http.MethodGet, k.PublicURL()+"/self-service/registration/api", nil, &flow); err != nil {
		return kratosSession{}, fmt.Errorf("kratos registration flow: %w", err)
	}
	pw := make([]byte, 16)
	_, _ = rand.Read(pw)
	body := map[string]any{
		"method":   "password",
		"password": "Bench-" + hex.EncodeToString(pw),
		"traits":   map[string]any{"email": "bench-" + hex.EncodeToString(pw[:6]) + "@example.com"},
	}
	var res struct {
		SessionToken string `json:"session_token"`
		Session      struct {
			ID        string    `json:"id"`
			ExpiresAt time.Time `json:"expires_at"`
		} `json:"session"`
	}
	u := k.PublicURL() + "/self-service/registration?flow=" + url.QueryEscape(flow.ID)
	if err := doJSON(client, http.MethodPost, u, body, &res); err != nil {
		return kratosSession{}, fmt.Errorf("kratos registration: %w", err)
	}
	if res.SessionToken == "" {
		return kratosSession{}, fmt.Errorf("kratos registration returned no session token")
	}
	return kratosSession{ID: res.Session.ID, Token: res.SessionToken, ExpiresAt: res.Session.ExpiresAt}, nil
}

func doJSON(client *http.Client, method, u string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := client.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if res.StatusCode != http.StatusOK {
		if len(b) > 300 {
			b = b[:300]
		}
		return fmt.Errorf("%s %s: %d %s", method, u, res.StatusCode, b)
	}
	return json.Unmarshal(b, out)
}
