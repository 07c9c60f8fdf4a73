// Package proxy serves portcullis's two front ends over one pipeline: the
// reverse proxy ([Handler]: match a rule, run its stages, forward the
// request upstream or answer the error) and the API ([API]: the decision
// endpoint for nginx, Traefik and Envoy, the rule listing, health and
// version). WebSocket upgrades and streaming answers run the same pipeline
// and are handed to package proxy/tunnel ([Upgrader], [StreamGovernor]),
// which keeps them bound to the session.
package proxy
