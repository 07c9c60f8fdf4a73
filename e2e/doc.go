// Package e2e holds the end-to-end tests of the quickstart: the shipped
// configuration in contrib/quickstart run with a real Ory Kratos, the demo
// app and portcullis on loopback, driven over HTTP and WebSocket and by a
// real headless Chromium; the demo script started and stopped as a person
// would; and the docker-compose file and Dockerfile checked with the tools
// available without a container engine.
//
// The tests need the Kratos binary (scripts/build-kratos.sh), Chromium and
// docker-compose (scripts/install-test-deps.sh). When one is missing they
// fail and say how to install it; under `go test -short` they are skipped.
package e2e
