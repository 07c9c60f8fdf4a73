// Package errorhandlers holds the handlers that turn a denied request into
// a response (JSON, a redirect to a login page, a WWW-Authenticate
// challenge). A rule lists its own; errors.fallback applies otherwise. Each
// handler has a `when` list (see pipeline.When) choosing the errors and
// requests it answers.
package errorhandlers
