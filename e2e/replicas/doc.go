// Package replicas holds the end-to-end tests of revocation across
// replicas: three whole portcullis servers in one test process, a real Ory
// Kratos (scripts/build-kratos.sh) and a real redis-server
// (scripts/install-test-deps.sh) started and stopped by the tests.
package replicas
