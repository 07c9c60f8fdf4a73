//go:build linux

// Package traefik_test runs a real Traefik (built from the Go module proxy
// by scripts/build-traefik.sh, `make traefik`) with the shipped traefik.yml
// and dynamic.yml in front of a real upstream, asking a real portcullis
// (in-process, on loopback) for every decision through ForwardAuth, with
// identities from a real Ory Kratos. Without the binary the test is skipped
// with the command that builds it: the build takes too long for every
// `make test` (contrib/traefik/README.md).
package traefik_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/portcullis-proxy/portcullis/contrib/internal/forwardauthtest"
	"github.com/portcullis-proxy/portcullis/testsupport/kratostest"
	"github.com/portcullis-proxy/portcullis/testsupport/proctest"
)

var kratos = &kratostest.Shared{}

func TestMain(m *testing.M) { kratostest.RunMain(m, kratos) }

// traefikBinary finds the Traefik that scripts/build-traefik.sh builds
// (TRAEFIK_BIN, else .build/bin/traefik at the repository's root).
func traefikBinary(t *testing.T) string {
	bin := os.Getenv("TRAEFIK_BIN")
	if bin == "" {
		bin = filepath.Join(proctest.BinDir(), "traefik")
	}
	if _, err := os.Stat(bin); err != nil {
		t.Skipf("Traefik is not built (%s): run `make traefik` (scripts/build-traefik.sh) to run this test", bin)
	}
	abs, _ := filepath.Abs(bin)
	return abs
}

func TestTraefikForwardAuth(t *testing.T) {
	bin := traefikBinary(t)
	forwardauthtest.Run(t, kratos.Get(t), forwardauthtest.Gateway{
		Start: func(t *testing.T, apiAddr, upstreamAddr string) string {
			return startTraefik(t, bin, apiAddr, upstreamAddr)
		},
		// Traefik cleans dot segments and empty segments before it asks, so
		// those reach the denying rule; what it passes on as written is
		// refused by the strict decision API.
		CleansPath: true,
	})
}

// startTraefik runs traefik with the shipped static and dynamic files (their
// addresses replaced by the test's) and returns its address once the router
// serves; traefik is stopped when the test ends.
func startTraefik(t *testing.T, bin, apiAddr, upstreamAddr string) string {
	t.Helper()
	dir := t.TempDir()
	port := proctest.FreePort(t)
	forwardauthtest.EditFile(t, dir, "dynamic.yml", map[string]string{
		`address: "http://127.0.0.1:4456/decisions"`: fmt.Sprintf("address: %q", "http://"+apiAddr+"/decisions"),
		`- url: "http://127.0.0.1:8080"`:             fmt.Sprintf("- url: %q", "http://"+upstreamAddr),
	})
	static := forwardauthtest.EditFile(t, dir, "traefik.yml", map[string]string{
		`address: ":8000"`:                   fmt.Sprintf("address: \"127.0.0.1:%d\"", port),
		"filename: /etc/traefik/dynamic.yml": "filename: " + filepath.Join(dir, "dynamic.yml"),
	})
	cmd := exec.Command(bin, "--configFile="+static, "--log.level=WARN")
	cmd.Dir, cmd.Env = dir, append(os.Environ(), "HOME="+dir)
	// Traefik listens before the file provider's routers are in place:
	// ready once a public path reaches the upstream.
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	proctest.Start(t, cmd, syscall.SIGTERM, proctest.Options{
		Ready: proctest.HTTPReady("http://" + addr + "/public/ready"), Poll: 100 * time.Millisecond, Timeout: 30 * time.Second,
		ShowOnFailure: 1 << 20,
	})
	return addr
}
