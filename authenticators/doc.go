// Package authenticators holds the handlers that answer "who is this?".
// Each handler file holds one handler and its factory, NewXxx, which
// internal/registry lists under the name rules use: a function of the
// handler's config struct (pipeline.Typed) or, for handlers whose rules
// share key sets or caches, of its global config (pipeline.Shared). The
// helpers only authenticators use live here too: session checks and their
// cache, token locations (token_from) and scope strategies.
package authenticators
