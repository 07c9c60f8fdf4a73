// Package e2e holds the end-to-end tests of the quickstart: the shipped
// configuration in contrib/quickstart run with a real Ory Kratos, the demo
// app and portcullis on loopback, driven over HTTP and WebSocket and by a
// real headless Chromium; the demo script started and stopped as a person
// would; the docker-compose file and Dockerfile checked without a container
// engine; and, when a Docker Engine answers, both built and run as shipped
// (TestComposeStack, on stand-in base images scripts/docker-images.sh makes).
//
// The tests need the Kratos binary (scripts/build-kratos.sh), Chromium,
// docker-compose and debootstrap (scripts/install-test-deps.sh). When one is
// missing they fail and say how to install it; under `go test -short` they
// are skipped. TestComposeStack is skipped, saying so, without an engine.
//
// Beside it are the other tests through the whole server: e2e/kratos
// (Kratos sessions as identity), e2e/identity (the JWT, ladon, remote and
// ID-token handlers), e2e/replicas (revocation across replicas), e2e/soak
// (the built binary under load and on SIGTERM) and e2e/oathkeeper (the
// drop-in proof against Oathkeeper). They start portcullis through
// testsupport/servertest.
package e2e
