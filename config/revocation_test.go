package config_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-proxy/portcullis/config"
)

// TestAdminToken: the admin token comes from the file, the environment
// (SERVE_API_ADMIN_TOKEN) or a token file; both set, too short or an empty
// file are errors that never show the token.
func TestAdminToken(t *testing.T) {
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte("  file-token-0123456789\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		yaml    string
		env     []string
		want    string
		wantErr string
	}{
		{"off", "", nil, "", ""},
		{"in the file", "serve: {api: {admin: {token: file-value-0123456789}}}", nil, "file-value-0123456789", ""},
		{"environment overrides", "serve: {api: {admin: {token: file-value-0123456789}}}", []string{"SERVE_API_ADMIN_TOKEN=env-value-0123456789"}, "env-value-0123456789", ""},
		{"token file", "serve: {api: {admin: {token_file: " + tokenFile + "}}}", nil, "file-token-0123456789", ""},
		{"token file from the environment", "", []string{"SERVE_API_ADMIN_TOKEN_FILE=" + tokenFile}, "file-token-0123456789", ""},
		{"both", "serve: {api: {admin: {token: file-value-0123456789, token_file: " + tokenFile + "}}}", nil, "", "not both"},
		{"too short", "serve: {api: {admin: {token: short}}}", nil, "", "at least 16"},
		{"empty file", "serve: {api: {admin: {token_file: " + empty + "}}}", nil, "", "is empty"},
	}
	for _, tc := range tests {
		p := filepath.Join(dir, "c.yml")
		if err := os.WriteFile(p, []byte(tc.yaml+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		c, err := config.Load(p, tc.env, names)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if len(c.Warnings) > 0 {
			t.Errorf("%s: warnings %v", tc.name, c.Warnings)
		}
		got, err := c.Serve.API.Admin.ResolveToken()
		switch {
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("%s: error %v, want one containing %q", tc.name, err, tc.wantErr)
		case tc.wantErr == "" && (err != nil || got != tc.want):
			t.Errorf("%s: ResolveToken() = %q, %v; want %q", tc.name, got, err, tc.want)
		}
		if err != nil && (strings.Contains(err.Error(), "0123456789") || strings.Contains(err.Error(), "short")) {
			t.Errorf("%s: the error shows the token: %v", tc.name, err)
		}
	}
}

// TestRevocationKeys: the revocation block's defaults, keys and
// environment overrides, and the back-channel endpoint's checks.
func TestRevocationKeys(t *testing.T) {
	c, err := config.Load("", nil, names)
	if err != nil {
		t.Fatal(err)
	}
	r := c.Revocation
	if r.TombstoneTTL != 24*time.Hour || r.MaxTombstones != 100000 || r.Redis.Stream != "portcullis:revocations" ||
		r.Redis.URL != "" || r.BackchannelLogout.MaxAge != 5*time.Minute || r.BackchannelLogout.Path != "" {
		t.Errorf("defaults: %+v", r)
	}
	c, err = config.Load("", []string{
		"REVOCATION_REDIS_URL=redis://redis:6379/1",
		"REVOCATION_BACKCHANNEL_LOGOUT_PATH=/bcl",
		"REVOCATION_BACKCHANNEL_LOGOUT_ISSUER=https://op.example",
		"REVOCATION_BACKCHANNEL_LOGOUT_AUDIENCE=a,b",
		"REVOCATION_BACKCHANNEL_LOGOUT_JWKS_URLS=https://op.example/jwks.json",
		"WEBSOCKET_UNAVAILABLE_GRACE=30s",
	}, names)
	if err != nil {
		t.Fatal(err)
	}
	b := c.Revocation.BackchannelLogout
	if c.Revocation.Redis.URL != "redis://redis:6379/1" || b.Path != "/bcl" || len(b.Audience) != 2 || len(b.JWKSURLs) != 1 {
		t.Errorf("environment: %+v", c.Revocation)
	}
	if err := b.Validate(); err != nil {
		t.Errorf("complete back-channel block: %v", err)
	}
	ws, err := c.WebSocketDefaults()
	if err != nil || ws.UnavailableGrace != 30*time.Second {
		t.Errorf("websocket.unavailable_grace from the environment: %v, %v", ws.UnavailableGrace, err)
	}
	for _, bad := range []config.BackchannelLogout{
		{Path: "bcl", Issuer: "i", Audience: []string{"a"}, JWKSURLs: []string{"u"}},
		{Path: "/admin/bcl", Issuer: "i", Audience: []string{"a"}, JWKSURLs: []string{"u"}},
		{Path: "/bcl", Audience: []string{"a"}, JWKSURLs: []string{"u"}},
		{Path: "/bcl", Issuer: "i", JWKSURLs: []string{"u"}},
		{Path: "/bcl", Issuer: "i", Audience: []string{"a"}},
	} {
		if bad.Validate() == nil {
			t.Errorf("accepted %+v", bad)
		}
	}
}
