package oathkeeper

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/portcullis-proxy/portcullis/testsupport/proctest"
	"github.com/portcullis-proxy/portcullis/testsupport/servertest"
)

// oathkeeperScripts are Oathkeeper's own e2e scripts (testdata/README.md
// says what was changed in the copies).
var oathkeeperScripts = []struct {
	dir      string
	helpers  map[string]string // file in the script's directory → built helper
	upstream bool              // a loopback upstream on port 6662
}{
	{dir: "e2e", helpers: map[string]string{"okapi": "okapi-e2e", "okclient": "okclient"}},
	{dir: "forwarded-header", upstream: true},
	{dir: "reload", upstream: true},
	{dir: "bearer-token", helpers: map[string]string{"okapi": "okapi-bearer"}},
}

// scriptPorts are the fixed ports the scripts use.
var scriptPorts = []string{"6060", "6061", "6660", "6661", "6662"}

// TestOathkeeperScripts runs Oathkeeper's e2e scripts against portcullis.
func TestOathkeeperScripts(t *testing.T) {
	helpers := filepath.Join(filepath.Dir(oathkeeperBinary(t)), "oathkeeper-test")
	for _, tool := range []string{"bash", "curl", "nc"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not found: scripts/install-test-deps.sh installs it", tool)
		}
	}
	bin := servertest.Binary(t)
	shims := t.TempDir()
	// The scripts stop earlier runs with `killall`; here nothing but the
	// processes this test starts may be signalled, by their group.
	if err := os.WriteFile(filepath.Join(shims, "killall"), []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, sc := range oathkeeperScripts {
		t.Run(sc.dir, func(t *testing.T) {
			dir := t.TempDir()
			ports := map[string]string{}
			for i, p := range proctest.FreePorts(t, len(scriptPorts)) {
				ports[scriptPorts[i]] = fmt.Sprint(p)
			}
			copyWithPorts(t, filepath.Join("testdata", sc.dir), dir, ports)
			link(t, bin, filepath.Join(dir, "portcullis"))
			for name, built := range sc.helpers {
				src := filepath.Join(helpers, built)
				if _, err := os.Stat(src); err != nil {
					t.Skipf("%s not built: run scripts/build-oathkeeper.sh", src)
				}
				link(t, src, filepath.Join(dir, name))
			}
			if sc.upstream {
				ln, err := net.Listen("tcp", "127.0.0.1:"+ports["6662"])
				if err != nil {
					t.Fatal(err)
				}
				srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					w.WriteHeader(http.StatusOK)
				})}
				go func() { _ = srv.Serve(ln) }()
				t.Cleanup(func() { _ = srv.Close() })
			}
			out, err := runScript(t, dir, shims)
			if err != nil {
				t.Fatalf("%s/run.sh: %v\n%s", sc.dir, err, out.Tail(8000))
			}
		})
	}
}

// runScript runs run.sh in dir in a process group of its own, within a
// generous bound (the reload script alone sleeps 23 s), and ends the whole
// group when it returns: the servers the script started in the background
// included.
func runScript(t *testing.T, dir, shims string) (*proctest.Buffer, error) {
	// The scripts leave the metrics listener at its default port (9000);
	// a free one keeps parallel runs apart.
	metrics := fmt.Sprint(proctest.FreePort(t))
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", filepath.Join(dir, "run.sh"))
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "PATH="+shims+string(os.PathListSeparator)+os.Getenv("PATH"),
		"SQA_OPT_OUT=true", "SERVE_PROMETHEUS_PORT="+metrics)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out := &proctest.Buffer{}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	err := cmd.Start()
	if err != nil {
		return out, err
	}
	err = cmd.Wait()
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
	time.Sleep(200 * time.Millisecond)
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	return out, err
}

// copyWithPorts copies the files of src into dst, replacing each fixed
// port by its free one.
func copyWithPorts(t *testing.T, src, dst string, ports map[string]string) {
	t.Helper()
	re := regexp.MustCompile(`\b(` + strings.Join(scriptPorts, "|") + `)\b`)
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		b = re.ReplaceAllFunc(b, func(p []byte) []byte { return []byte(ports[string(p)]) })
		mode := os.FileMode(0o644)
		if strings.HasSuffix(e.Name(), ".sh") {
			mode = 0o755
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), b, mode); err != nil {
			t.Fatal(err)
		}
	}
}

// link places the executable src at dst.
func link(t *testing.T, src, dst string) {
	t.Helper()
	if err := os.Symlink(src, dst); err != nil {
		t.Fatal(err)
	}
}
