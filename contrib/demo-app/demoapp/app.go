// Package demoapp is the quickstart's demo application: the WebSocket echo
// service of the Oathkeeper WebSocket guide, the page that uses it, and a
// minimal self-service UI (login, registration, error) that renders Ory
// Kratos browser flows, so the demo runs without Kratos's Node UI.
//
// It is meant to sit behind portcullis on one origin with Kratos's public
// API (see contrib/quickstart): portcullis routes /.ory/kratos/public/ to
// Kratos, lets /login, /registration and /error through anonymously, asks
// Kratos about the session cookie for / and /ws, and sets X-User and
// X-User-Email for the app.
package demoapp

import (
	"embed"
	"errors"
	"html/template"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"
)

// The headers portcullis's header mutator sets in the quickstart rules.
const (
	HeaderSubject = "X-User"
	HeaderEmail   = "X-User-Email"
)

//go:embed templates/*.html
var templateFS embed.FS

// Config configures the app.
type Config struct {
	// KratosPublicURL is Kratos's public API as this process reaches it
	// (server to server, e.g. http://127.0.0.1:4433); required. Browsers
	// never use it: they reach Kratos through the proxy.
	KratosPublicURL string
	// KratosBrowserURL is where browsers reach Kratos's public API: a path
	// on the app's own origin (default "/.ory/kratos/public", the prefix
	// the quickstart rules route to Kratos) or an absolute URL. New flows
	// begin there.
	KratosBrowserURL string
	// Log receives failures and one line per WebSocket; nil discards.
	Log *slog.Logger
	// MaxMessage bounds one WebSocket message (default 64 KiB).
	MaxMessage int64
	// IdleTimeout closes a WebSocket that sent nothing for this long
	// (default 10 minutes).
	IdleTimeout time.Duration
	// PortcullisAPIURL is portcullis's API as this process reaches it
	// (e.g. http://127.0.0.1:4456); with Rule, the echo page reads the
	// rule's websocket.max_lifetime there and counts down to the close.
	// Empty: no countdown.
	PortcullisAPIURL string
	// Rule is the id of the rule that admits /ws (the quickstart's
	// "demo-echo").
	Rule string
}

// New returns the app's handler:
//
//	GET /              the echo page (index.html)
//	GET /ws            the WebSocket echo
//	GET /login         the login flow page
//	GET /registration  the registration flow page
//	GET /error         Kratos's error page
//	GET /health        200 "ok", for readiness checks
func New(c Config) (http.Handler, error) {
	if c.KratosPublicURL == "" {
		return nil, errors.New("demoapp: KratosPublicURL is required")
	}
	k, err := newKratosClient(c.KratosPublicURL)
	if err != nil {
		return nil, err
	}
	if c.KratosBrowserURL == "" {
		c.KratosBrowserURL = "/.ory/kratos/public"
	}
	browser := strings.TrimSuffix(c.KratosBrowserURL, "/")
	log := c.Log
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if c.MaxMessage <= 0 {
		c.MaxMessage = 64 << 10
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = 10 * time.Minute
	}
	var lifetime *ruleLifetime
	if c.PortcullisAPIURL != "" {
		if lifetime, err = newRuleLifetime(c.PortcullisAPIURL, c.Rule); err != nil {
			return nil, err
		}
	}
	pages, err := template.ParseFS(templateFS, "templates/*.html")
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("GET /{$}", &indexPage{kratos: k, browser: browser, lifetime: lifetime, pages: pages, log: log})
	mux.Handle("GET /ws", &echoService{log: log, maxMessage: c.MaxMessage, idle: c.IdleTimeout})
	mux.Handle("GET /login", &flowPage{kind: "login", kratos: k, browser: browser, pages: pages, log: log})
	mux.Handle("GET /registration", &flowPage{kind: "registration", kratos: k, browser: browser, pages: pages, log: log})
	mux.Handle("GET /error", &errorPage{kratos: k, pages: pages, log: log})
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, "ok\n")
	})
	return mux, nil
}
