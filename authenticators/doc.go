// Package authenticators holds the handlers that answer "who is this?".
// Each file is one handler; each exports a pipeline.Factory named NewXxx
// that cmd/portcullis registers under the name rules use.
package authenticators
