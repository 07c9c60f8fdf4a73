// Package kratos holds end-to-end tests of Kratos sessions as identity:
// the whole portcullis server in front of a real upstream (HTTP and
// WebSocket), with a real Ory Kratos behind cookie_session and
// bearer_token, and the redirect and www_authenticate error handlers. It
// has no non-test code; its benchmark measures the decision API with a
// Kratos session, cache hit against cache off and an anonymous rule.
package kratos
