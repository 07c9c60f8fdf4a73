// Package errorhandlers holds the handlers that turn a denied request into
// a response (JSON, a redirect to a login page, a WWW-Authenticate
// challenge). Each file is one handler with its factory, NewXxx, which
// internal/registry lists. A rule lists its own error handlers;
// errors.fallback applies otherwise. Which one answers an error is chosen
// by the `when` list of its config (see pipeline.When), which the rule
// compiler reads: the handlers here only write the answer.
package errorhandlers
