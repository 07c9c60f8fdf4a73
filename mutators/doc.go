// Package mutators holds the handlers that decide what the upstream
// learns. Each handler file holds one handler and its factory, NewXxx,
// which internal/registry lists under the name rules use.
package mutators
