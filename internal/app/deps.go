package app

import (
	"context"
	"fmt"

	"github.com/sirupsen/logrus"

	"github.com/portcullis-proxy/portcullis/config"
	"github.com/portcullis-proxy/portcullis/internal/fetch"
	"github.com/portcullis-proxy/portcullis/internal/logfmt"
	"github.com/portcullis-proxy/portcullis/pipeline"
)

// HandlerDeps returns the services the configuration's handlers are built
// with: log (nil: handlers log to slog.Default()) and the one HTTP client
// of the http_client block, its CA file read now, so that an unreadable
// file or one without certificates is an error naming the key. The
// client's idle connections are closed when ctx ends (a configuration
// reload replacing the handlers, or shutdown); ctx is also the handlers'
// Context. Offline and Revocations are the caller's to set.
func HandlerDeps(ctx context.Context, cfg *config.Config, log *logrus.Logger) (pipeline.Deps, error) {
	opts := fetch.ClientOptions{ConnectTimeout: cfg.HTTPClient.ConnectTimeout}
	if ca := cfg.HTTPClient.CAFile; ca != "" {
		pool, err := loadCAPool(ca)
		if err != nil {
			return pipeline.Deps{}, fmt.Errorf("%s: http_client.ca_file: %w", cfg.Position("http_client.ca_file"), err)
		}
		opts.RootCAs = pool
	}
	client := fetch.NewClient(opts)
	context.AfterFunc(ctx, client.CloseIdleConnections)
	deps := pipeline.Deps{Context: ctx, HTTPClient: client}
	if log != nil {
		deps.Log = logfmt.Slog(log)
	}
	return deps, nil
}
