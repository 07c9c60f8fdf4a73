package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/portcullis-proxy/portcullis/internal/app"
)

func newServe() *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Start the proxy and the API",
		Long: `Start the proxy (serve.proxy, default :4455) and the API (serve.api, default
:4456) with the configuration file given by -c. Environment variables override
file values: the key path upper-cased with _ for . (SERVE_PROXY_PORT=8080).
SIGINT or SIGTERM stops accepting, finishes in-flight requests, closes every
WebSocket tunnel with 1001 and exits within serve.proxy.timeout.shutdown.
With log.buffer set, SIGHUP writes the buffered log lines out at once.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			srv, err := app.Open(file, os.Environ(), os.Stderr)
			if err != nil {
				return err
			}
			cfg, log := srv.Config, srv.Log
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			hup := make(chan os.Signal, 1)
			if cfg.Log.Buffer.Size > 0 {
				signal.Notify(hup, syscall.SIGHUP)
				defer signal.Stop(hup)
			}
			for waiting := true; waiting; {
				select {
				case <-ctx.Done():
					waiting = false
				case <-hup:
					_ = srv.FlushLog()
				}
			}
			log.Info("shutting down")
			sctx, cancel := context.WithTimeout(context.Background(), cfg.Serve.Proxy.Timeout.Shutdown)
			defer cancel()
			return srv.Shutdown(sctx)
		},
	}
	cmd.Flags().StringVarP(&file, "config", "c", "", "configuration file (YAML or JSON)")
	return cmd
}
