// Package proctest runs the child processes tests depend on — Ory Kratos,
// redis-server, Ory Oathkeeper, nginx, Caddy, Traefik, the built portcullis
// binary — and holds what their harnesses share: a goroutine-safe output
// buffer, free loopback ports, a readiness check over HTTP and the
// repository's root.
//
// A child started here dies with the test binary on Linux (the kernel sends
// it SIGKILL when its parent thread ends), so an interrupted run leaves no
// server behind.
//
// It is part of testsupport: only tests and the bench harness import it.
package proctest
