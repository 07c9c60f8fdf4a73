// Package redistest runs a real redis-server (Debian's, installed by
// scripts/install-test-deps.sh) for tests: a free loopback port, a
// temporary directory, an append-only file so that data survives
// [Redis.Restart], no password. Tests that need the broker to go away and
// come back stop and restart it on the same port.
//
// When redis-server is not installed, tests fail with a message saying how
// to install it; under `go test -short` they are skipped instead.
//
// It is part of testsupport (the test harnesses): only tests and the bench
// harness import it.
package redistest

import (
	"bytes"
	"errors"
	"net"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/portcullis-proxy/portcullis/testsupport/proctest"

	"github.com/portcullis-proxy/portcullis/pipeline"
)

// EnvBinary names the environment variable that overrides the binary.
const EnvBinary = "PORTCULLIS_REDIS_BIN"

// Redis is one running (or stopped) redis-server.
type Redis struct {
	bin, dir string
	port     int

	run proctest.Restartable
}

// ErrNotInstalled is returned by [New] when there is no redis-server.
const ErrNotInstalled pipeline.Sentinel = "redis-server is not installed: run scripts/install-test-deps.sh (Debian package redis-server)"

// Start runs a redis-server for tb and stops it, removing its files, when
// tb ends.
func Start(tb testing.TB) *Redis {
	tb.Helper()
	r, err := New()
	if errors.Is(err, ErrNotInstalled) && testing.Short() {
		tb.Skip(err)
	}
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(r.Close)
	return r
}

// New runs a redis-server on a free loopback port in a temporary
// directory; Close stops it and removes the directory.
func New() (*Redis, error) {
	bin := os.Getenv(EnvBinary)
	if bin == "" {
		var err error
		if bin, err = exec.LookPath("redis-server"); err != nil {
			return nil, ErrNotInstalled
		}
	}
	ports, err := proctest.Ports(1)
	if err != nil {
		return nil, err
	}
	port := ports[0]
	dir, err := os.MkdirTemp("", "portcullis-redis-")
	if err != nil {
		return nil, err
	}
	r := &Redis{bin: bin, dir: dir, port: port}
	if err := r.Restart(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return r, nil
}

// Close stops the server and removes its files.
func (r *Redis) Close() {
	r.Stop()
	os.RemoveAll(r.dir)
}

// URL is the server's redis:// URL.
func (r *Redis) URL() string { return "redis://127.0.0.1:" + strconv.Itoa(r.port) + "/0" }

// Addr is the server's host:port.
func (r *Redis) Addr() string { return "127.0.0.1:" + strconv.Itoa(r.port) }

// Stop kills the server and waits for it to exit; the data written so far
// stays in its append-only file for a restart.
func (r *Redis) Stop() { r.run.Stop() }

// Restart stops the server if it runs and starts it again on the same port
// with the same data, waiting until it answers PING.
func (r *Redis) Restart() error {
	cmd := exec.Command(r.bin,
		"--port", strconv.Itoa(r.port), "--bind", "127.0.0.1",
		"--dir", r.dir, "--appendonly", "yes", "--appendfsync", "always",
		"--save", "", "--daemonize", "no", "--protected-mode", "yes",
		"--logfile", "", "--loglevel", "warning")
	cmd.Dir = r.dir
	return r.run.Restart(cmd, proctest.Options{Name: "redis-server", Ready: r.ping, Poll: 20 * time.Millisecond, Timeout: 20 * time.Second})
}

// ping sends PING in RESP and expects +PONG.
func (r *Redis) ping() bool {
	c, err := net.DialTimeout("tcp", r.Addr(), time.Second)
	if err != nil {
		return false
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("*1\r\n$4\r\nPING\r\n")); err != nil {
		return false
	}
	buf := make([]byte, 16)
	n, _ := c.Read(buf)
	return bytes.HasPrefix(buf[:n], []byte("+PONG"))
}
