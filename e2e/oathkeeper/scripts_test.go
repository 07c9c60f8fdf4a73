package oathkeeper

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/portcullis-proxy/portcullis/testsupport/proctest"
	"github.com/portcullis-proxy/portcullis/testsupport/servertest"
)

// oathkeeperModule is the module whose test/ directory holds the scripts;
// tools/oathkeeper requires this version and its go.sum holds the checksum.
const oathkeeperModule = "github.com/ory/oathkeeper@v0.40.9"

// oathkeeperScripts are Oathkeeper's own e2e scripts: the directories
// test/<dir> of [oathkeeperModule], run with only [scriptEdits] and the
// ports changed.
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

// scriptEdits are the only changes made to the scripts' files, and none
// touches an expected result. Each replaces old by new in the files whose
// name matches files (a [path.Match] pattern). Every edit must apply in at
// least one file: one that no longer finds its text fails the test rather
// than running a script it was not written for.
var scriptEdits = []struct{ files, old, new string }{
	// The test places the portcullis binary in the directory; the scripts
	// build Oathkeeper there and run ./oathkeeper.
	{"run.sh", "go build -o . ../..", ": go build -o . ../.. -- the test driver puts the portcullis binary here"},
	{"run.sh", "./oathkeeper --config", "./portcullis --config"},
	{"run.sh", "killall oathkeeper", "killall portcullis"},
	// okapi and okclient are Oathkeeper's programs, built unchanged from
	// its module by scripts/build-oathkeeper.sh and placed in the directory.
	{"run.sh", "go run ./okapi", "./okapi"},
	{"run.sh", "go run ./okclient", "./okclient"},
	// The rules of forwarded-header and reload forward to example.com; the
	// machines the tests run on have no network, so they forward to a
	// loopback server the test runs on port 6662 that answers 200.
	{"rules*.json", "https://example.com/", "http://127.0.0.1:6662/"},
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
	scripts := loadScripts(t)
	for _, sc := range oathkeeperScripts {
		t.Run(sc.dir, func(t *testing.T) {
			dir := t.TempDir()
			ports := map[string]string{}
			for i, p := range proctest.FreePorts(t, len(scriptPorts)) {
				ports[scriptPorts[i]] = fmt.Sprint(p)
			}
			writeWithPorts(t, scripts[sc.dir], dir, ports)
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

// oathkeeperModuleDir returns the directory of [oathkeeperModule] in the
// module cache, downloading the module when it is not there; go checks the
// download against tools/oathkeeper/go.sum.
func oathkeeperModuleDir(t *testing.T) string {
	t.Helper()
	cmd := exec.Command("go", "mod", "download", "-json", oathkeeperModule)
	cmd.Dir = filepath.Join("..", "..", "tools", "oathkeeper")
	cmd.Env = append(os.Environ(), "GOWORK=off")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	var mod struct{ Dir, Error string }
	if jerr := json.Unmarshal(out, &mod); err != nil || jerr != nil || mod.Error != "" || mod.Dir == "" {
		t.Fatalf("go mod download %s in tools/oathkeeper (the Go module proxy must be reachable): %v %s\n%s%s",
			oathkeeperModule, err, mod.Error, out, stderr.Bytes())
	}
	return mod.Dir
}

// loadScripts reads each script's directory from Oathkeeper's module and
// applies [scriptEdits], failing the test if an edit found nothing to
// replace. It returns the files by directory, then by name.
func loadScripts(t *testing.T) map[string]map[string][]byte {
	t.Helper()
	root := filepath.Join(oathkeeperModuleDir(t), "test")
	applied := make([]int, len(scriptEdits))
	scripts := map[string]map[string][]byte{}
	for _, sc := range oathkeeperScripts {
		entries, err := os.ReadDir(filepath.Join(root, sc.dir))
		if err != nil {
			t.Fatal(err)
		}
		files := map[string][]byte{}
		for _, e := range entries {
			// Directories hold the helpers' sources, built elsewhere.
			if e.IsDir() {
				continue
			}
			b, err := os.ReadFile(filepath.Join(root, sc.dir, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			for i, ed := range scriptEdits {
				if ok, _ := path.Match(ed.files, e.Name()); ok && bytes.Contains(b, []byte(ed.old)) {
					b = bytes.ReplaceAll(b, []byte(ed.old), []byte(ed.new))
					applied[i]++
				}
			}
			files[e.Name()] = b
		}
		scripts[sc.dir] = files
	}
	for i, n := range applied {
		if n == 0 {
			ed := scriptEdits[i]
			t.Fatalf("no %s of %s contains %q: the edits no longer fit the scripts", ed.files, oathkeeperModule, ed.old)
		}
	}
	return scripts
}

// writeWithPorts writes files into dst, replacing each fixed port by its
// free one.
func writeWithPorts(t *testing.T, files map[string][]byte, dst string, ports map[string]string) {
	t.Helper()
	re := regexp.MustCompile(`\b(` + strings.Join(scriptPorts, "|") + `)\b`)
	for name, b := range files {
		b = re.ReplaceAllFunc(b, func(p []byte) []byte { return []byte(ports[string(p)]) })
		mode := os.FileMode(0o644)
		if strings.HasSuffix(name, ".sh") {
			mode = 0o755
		}
		if err := os.WriteFile(filepath.Join(dst, name), b, mode); err != nil {
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
