// Package soak holds the tests that run the built portcullis binary as a
// separate process under load: the bounded soak (concurrent tunnels with
// ordered traffic, steady HTTP load through the proxy and the decision API,
// rule reloads, then a return to rest), and graceful shutdown on SIGTERM
// with tunnels open. `go test ./...` runs a small soak; `make soak` runs
// the full one (PORTCULLIS_SOAK=full).
package soak
