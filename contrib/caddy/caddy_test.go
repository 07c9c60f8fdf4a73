//go:build linux

// Package caddy_test runs a real Caddy (Debian's caddy package) with the
// shipped Caddyfile in front of a real upstream, asking a real portcullis
// (in-process, on loopback) for every decision through forward_auth, with
// identities from a real Ory Kratos.
package caddy_test

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/portcullis-proxy/portcullis/contrib/internal/forwardauthtest"
	"github.com/portcullis-proxy/portcullis/testsupport/kratostest"
	"github.com/portcullis-proxy/portcullis/testsupport/proctest"
)

var kratos = &kratostest.Shared{}

func TestMain(m *testing.M) { kratostest.RunMain(m, kratos) }

func TestCaddyForwardAuth(t *testing.T) {
	bin := forwardauthtest.Installed(t, "caddy")
	forwardauthtest.Run(t, kratos.Get(t), forwardauthtest.Gateway{
		Start: func(t *testing.T, apiAddr, upstreamAddr string) string {
			return startCaddy(t, bin, apiAddr, upstreamAddr)
		},
		// Caddy passes the path on as the client wrote it, so the decision
		// API refuses what the application might resolve differently:
		// encoded separators and letters too.
		PathConfusion: []forwardauthtest.Denial{
			{Path: "/public/x%2fadmin", Want: http.StatusBadRequest},
			{Path: "/%70ublic/x", Want: http.StatusBadRequest},
		},
	})
}

// startCaddy runs caddy with the shipped Caddyfile (its addresses replaced
// by the test's) and returns its address; caddy is stopped when the test
// ends. Its state goes to a temporary directory.
func startCaddy(t *testing.T, bin, apiAddr, upstreamAddr string) string {
	t.Helper()
	port := proctest.FreePort(t)
	dir := t.TempDir()
	file := forwardauthtest.EditFile(t, dir, "Caddyfile", map[string]string{
		"forward_auth 127.0.0.1:4456 {": "forward_auth " + apiAddr + " {",
		"reverse_proxy 127.0.0.1:8080":  "reverse_proxy " + upstreamAddr,
		"\n:8000 {":                     fmt.Sprintf("\nhttp://127.0.0.1:%d {", port),
	})
	cmd := exec.Command(bin, "run", "--config", file, "--adapter", "caddyfile")
	cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_DATA_HOME="+dir, "XDG_CONFIG_HOME="+dir)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	proctest.Start(t, cmd, syscall.SIGTERM, proctest.Options{
		Ready: func() bool { return proctest.Listening(addr) }, Timeout: 20 * time.Second, ShowOnFailure: 1 << 20,
	})
	return addr
}
