// Package testsupport is the folder of the test harnesses: code that tests
// (and the bench harness) import and production code never does. Each
// harness is a package of its own:
//
//   - [github.com/portcullis-proxy/portcullis/testsupport/servertest]: the
//     whole portcullis server started for a test, in this process or as
//     the built binary, from a configuration and rules as a user writes
//     them.
//   - [github.com/portcullis-proxy/portcullis/testsupport/kratostest]: a
//     real Ory Kratos, with identities, sessions and flows.
//   - [github.com/portcullis-proxy/portcullis/testsupport/redistest]: a
//     real redis-server that can be stopped and restarted.
//   - [github.com/portcullis-proxy/portcullis/testsupport/proctest]: the
//     child processes the others run, free ports, output buffers.
//   - [github.com/portcullis-proxy/portcullis/testsupport/wsecho]: a real
//     WebSocket echo upstream.
//   - [github.com/portcullis-proxy/portcullis/testsupport/wsframe]: the
//     raw-frame WebSocket echo and sink the benchmarks measure against,
//     and the frame reader and masked frames their clients send.
//   - [github.com/portcullis-proxy/portcullis/testsupport/testkeys]: real
//     signing keys, key sets and signed tokens.
//   - [github.com/portcullis-proxy/portcullis/testsupport/faultinject]: the
//     fault injectors, for failures a real part cannot show on demand.
//   - [github.com/portcullis-proxy/portcullis/testsupport/handlertest]: the
//     deps a handler is enabled with, configs as JSON, access rules written
//     as a user writes them, and the raw requests and polls tests share;
//     its package ruleset compiles rules into a served set.
//   - [github.com/portcullis-proxy/portcullis/testsupport/benchtest]: the
//     shapes benchmarks share (the session cache's three figures).
//
// This package itself holds no code.
package testsupport
