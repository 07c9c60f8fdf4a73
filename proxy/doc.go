// Package proxy serves portcullis's front ends over one decision path: the
// reverse proxy ([Handler]: match a rule, run its stages, forward the
// request upstream or answer the error), the API ([API]: the decision
// endpoint for nginx, Traefik and Envoy, the rule listing, health and
// version), Envoy's gRPC ext_authz ([ExtAuthz]) and the admin API
// ([Admin]).
//
// Every front end is built by its constructor ([NewHandler], [NewAPI],
// [NewExtAuthz]) from the [DecisionOptions] they share, takes its options
// once and never changes them, so it is ready for concurrent use when the
// constructor returns. The sequence is written once: describe the request
// (strictly: an ambiguous path or host is a 400), match exactly one rule,
// run its stages, and on a denial remove the credential carriers and
// answer with the rule's error handler; then the request's span, its metric
// and its log line. A front end differs only in how it reads the request
// and writes the allowed answer. WebSocket upgrades and streaming answers
// run the same path and are handed to package proxy/tunnel ([Upgrader],
// [StreamGovernor]), which keeps them bound to the session.
package proxy
