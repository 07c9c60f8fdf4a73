// Package oathkeeper proves the drop-in promise against Ory Oathkeeper
// v0.40.9 itself. The differential suite starts a real Oathkeeper
// (scripts/build-oathkeeper.sh builds .build/bin/oathkeeper) and a real
// portcullis with the same configuration file and the same access rules,
// sends every case of one table — ported from Oathkeeper's own unit-test
// tables and fixtures — to both, and compares the status, the headers that
// matter and JSON bodies. Upstreams, Kratos, JWKS, introspection and remote
// authorizer endpoints are real loopback servers.
//
// A case where portcullis differs on purpose (a security hardening) says so
// with its reason; docs/migration-from-oathkeeper.md lists each.
//
// Oathkeeper's four e2e scripts (test/e2e, test/forwarded-header,
// test/reload, test/bearer-token) are read from its module (go mod download,
// checked against tools/oathkeeper/go.sum; the Go module proxy must be
// reachable) and run against the portcullis binary with only binary names,
// ports and one upstream address changed: scripts_test.go lists each edit.
// Oathkeeper is Apache License 2.0, copyright Ory Corp; its module carries
// the license.
//
// Without the Oathkeeper binary the tests skip and say how to build it.
package oathkeeper
