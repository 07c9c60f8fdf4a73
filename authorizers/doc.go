// Package authorizers holds the handlers that answer "may they?". Each
// handler file holds one handler and its factory, NewXxx, which
// internal/registry lists under the name rules use.
package authorizers
