// Package handlertest holds what the tests of the stage packages
// (authenticators, authorizers, mutators) and of the packages that run
// them need alike: the pipeline.Deps a handler is enabled with, as
// internal/app builds them; a handler enabled and built from configs as
// JSON; the access rules that route requests to handlers, as YAML; a JSON
// POST and a bounded wait. It imports no stage package (nor rules or
// internal/registry), so that the stage packages' own tests may import it;
// it is imported only by _test files.
package handlertest

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"

	"github.com/portcullis-proxy/portcullis/internal/fetch"
	"github.com/portcullis-proxy/portcullis/internal/logfmt"
	"github.com/portcullis-proxy/portcullis/pipeline"
)

// Deps returns the services a handler is enabled with: a context that ends
// with the test, the process's HTTP client with its defaults, and a
// logger (debug level) that writes nowhere.
func Deps(tb testing.TB) pipeline.Deps {
	d, _ := DepsWithLog(tb)
	return d
}

// DepsWithLog is [Deps] whose log entries hook records.
func DepsWithLog(tb testing.TB) (pipeline.Deps, *logtest.Hook) {
	tb.Helper()
	log, hook := logtest.NewNullLogger()
	log.SetLevel(logrus.DebugLevel)
	ctx, cancel := context.WithCancel(context.Background())
	tb.Cleanup(cancel)
	return pipeline.Deps{Log: logfmt.Slog(log), Context: ctx, HTTPClient: fetch.NewClient(fetch.ClientOptions{})}, hook
}

// JSON marshals v, a handler's config, failing the test if it cannot.
func JSON(tb testing.TB, v any) json.RawMessage {
	tb.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}
