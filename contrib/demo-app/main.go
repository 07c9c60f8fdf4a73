// Command demo-app is the quickstart's demo application: a WebSocket echo
// service with a page that uses it, and minimal login and registration
// pages for Ory Kratos browser flows. It is meant to run behind portcullis;
// see contrib/quickstart/README.md.
//
// Usage:
//
//	demo-app [-listen 127.0.0.1:4457] [-kratos-public-url http://127.0.0.1:4433]
//	         [-kratos-browser-url /.ory/kratos/public]
//	         [-portcullis-api-url http://127.0.0.1:4456 -rule demo-echo]
//
// The flags default to $DEMO_LISTEN, $KRATOS_PUBLIC_URL, $KRATOS_BROWSER_URL,
// $PORTCULLIS_API_URL and $DEMO_RULE when set. With -portcullis-api-url the
// echo page counts down to the rule's websocket.max_lifetime.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/portcullis-proxy/portcullis/contrib/demo-app/demoapp"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "demo-app:", err)
		os.Exit(1)
	}
}

func run() error {
	listen := flag.String("listen", envOr("DEMO_LISTEN", "127.0.0.1:4457"), "address to listen on")
	kratos := flag.String("kratos-public-url", envOr("KRATOS_PUBLIC_URL", "http://127.0.0.1:4433"),
		"Kratos public API as this process reaches it")
	browser := flag.String("kratos-browser-url", envOr("KRATOS_BROWSER_URL", "/.ory/kratos/public"),
		"Kratos public API as browsers reach it (a path on this origin, or a URL)")
	api := flag.String("portcullis-api-url", envOr("PORTCULLIS_API_URL", ""),
		"portcullis's API as this process reaches it, to read the rule's max lifetime (empty: no countdown)")
	rule := flag.String("rule", envOr("DEMO_RULE", "demo-echo"), "id of the rule that admits /ws")
	flag.Parse()

	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	h, err := demoapp.New(demoapp.Config{KratosPublicURL: *kratos, KratosBrowserURL: *browser, Log: log,
		PortcullisAPIURL: *api, Rule: *rule})
	if err != nil {
		return err
	}
	srv := &http.Server{Addr: *listen, Handler: h, ReadHeaderTimeout: 5 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	log.Info("listening", "address", *listen, "kratos", *kratos)
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// Hijacked WebSockets are not waited for; they end with the process.
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return nil
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
