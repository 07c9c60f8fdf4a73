package app

import (
	"context"
	"io"

	"github.com/portcullis-proxy/portcullis/config"
	"github.com/portcullis-proxy/portcullis/internal/registry"
)

// Open is what `portcullis serve -c file` does before it waits for a
// signal: it loads the configuration file (env holds the environment
// overrides, KEY=value, and every handler portcullis has is known), builds
// the logger the log block asks for with its lines written to out, builds
// the server, binds its listeners and starts serving. The caller shuts the
// server down. An error is the configuration's (with file and line), the
// logger's or a listener's; nothing is left running then.
func Open(file string, env []string, out io.Writer) (*Server, error) {
	cfg, err := config.Load(file, env, registry.HandlerNames(registry.NewCatalog()))
	if err != nil {
		return nil, err
	}
	log, err := NewLogger(cfg.Log)
	if err != nil {
		return nil, err
	}
	log.Out = out
	srv, err := New(cfg, log)
	if err != nil {
		return nil, err
	}
	if err := srv.Listen(); err != nil {
		// What New built (the rules, their handlers) is released.
		_ = srv.Shutdown(context.Background())
		return nil, err
	}
	srv.Start()
	return srv, nil
}
