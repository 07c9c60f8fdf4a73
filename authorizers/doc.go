// Package authorizers holds the handlers that answer "may they?". Each
// file is one handler; each exports a pipeline.Factory named NewXxx.
package authorizers
