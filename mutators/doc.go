// Package mutators holds the handlers that decide what the upstream
// learns. Each file is one handler; each exports a pipeline.Factory named
// NewXxx.
package mutators
