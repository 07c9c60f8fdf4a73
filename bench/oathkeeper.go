package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/portcullis-proxy/portcullis/testsupport/proctest"
)

// Ory Oathkeeper v0.40.9 runs beside portcullis when its binary is built
// (scripts/build-oathkeeper.sh, from tools/oathkeeper) with the equivalent
// configuration and rules: the same anonymous → allow → header rule, and a
// bearer_token rule against the same Kratos. Oathkeeper has no session
// cache, so its session figure compares with portcullis's cache-off one.

// oathkeeperBinary is where scripts/build-oathkeeper.sh puts the binary.
func oathkeeperBinary(root string) string {
	if p := os.Getenv("PORTCULLIS_OATHKEEPER_BIN"); p != "" {
		return p
	}
	return filepath.Join(root, ".build", "bin", "oathkeeper")
}

// ensureOathkeeper decides whether Oathkeeper runs: "off" never, "auto"
// when built, "on" building it when missing.
func ensureOathkeeper(root, mode string) (string, error) {
	bin := oathkeeperBinary(root)
	_, err := os.Stat(bin)
	switch mode {
	case "off":
		return "", nil
	case "auto":
		if err != nil {
			return "", nil
		}
		return bin, nil
	case "on":
		if err == nil {
			return bin, nil
		}
		fmt.Fprintln(os.Stderr, "bench: building Ory Oathkeeper (scripts/build-oathkeeper.sh)")
		cmd := exec.Command(filepath.Join(root, "scripts", "build-oathkeeper.sh"))
		cmd.Dir = root
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			return "", fmt.Errorf("building Oathkeeper: %w", err)
		}
		return bin, nil
	}
	return "", fmt.Errorf("-oathkeeper=%q: want auto, on or off", mode)
}

// oathkeeperProc is a running Oathkeeper.
type oathkeeperProc struct {
	cmd        *exec.Cmd
	done       chan struct{}
	proxy, api string
}

func (o *oathkeeperProc) pid() int { return o.cmd.Process.Pid }

// stop ends Oathkeeper (SIGTERM, then SIGKILL after 10 s).
func (o *oathkeeperProc) stop() {
	_ = o.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-o.done:
	case <-time.After(10 * time.Second):
		_ = o.cmd.Process.Kill()
		<-o.done
	}
}

// startOathkeeper writes Oathkeeper's configuration and rules into dir,
// starts it on free loopback ports and waits until its rules are loaded.
func startOathkeeper(ctx context.Context, bin, dir, upstream, whoami, logLevel, logFormat string) (*oathkeeperProc, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	ports, err := proctest.Ports(3)
	if err != nil {
		return nil, err
	}
	rules := benchRule("anon", "/anon", "{handler: anonymous}", upstream, "") +
		benchRule("ws", "/ws", "{handler: anonymous}", upstream, "")
	if whoami != "" {
		rules += benchRule("session", "/session", "{handler: bearer_token}", upstream, "")
	}
	rulesPath, err := writeFile(dir, "access-rules.yml", rules)
	if err != nil {
		return nil, err
	}
	// Oathkeeper replaces the check URL's path with the request's unless
	// told to keep it; Kratos answers on /sessions/whoami only.
	bearer := bearerBlock(whoami, "      preserve_path: true\n")
	cfgPath, err := writeFile(dir, "oathkeeper.yml", serverConfig([3]int(ports), rulesPath, bearer, logLevel, logFormat))
	if err != nil {
		return nil, err
	}
	logFile, err := os.Create(filepath.Join(dir, "oathkeeper.log"))
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	cmd := exec.Command(bin, "serve", "--sqa-opt-out", "-c", cfgPath)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "SQA_OPT_OUT=true")
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	o := &oathkeeperProc{cmd: cmd, done: make(chan struct{}),
		proxy: fmt.Sprintf("127.0.0.1:%d", ports[0]), api: fmt.Sprintf("127.0.0.1:%d", ports[1])}
	go func() { _ = cmd.Wait(); close(o.done) }()
	deadline := time.Now().Add(time.Minute)
	for {
		res, err := http.Get("http://" + o.api + "/health/ready")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return o, nil
			}
		}
		select {
		case <-o.done:
			b, _ := os.ReadFile(filepath.Join(dir, "oathkeeper.log"))
			return nil, fmt.Errorf("oathkeeper exited: %s", tail(string(b), 2000))
		case <-ctx.Done():
			o.stop()
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			o.stop()
			return nil, errors.New("oathkeeper did not become ready within a minute")
		}
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}
