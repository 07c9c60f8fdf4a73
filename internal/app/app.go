// Package app assembles a portcullis process from its configuration: the
// handler catalog, the rule repository, the proxy, the API and their
// listeners. cmd/portcullis and the end-to-end tests both start it.
package app

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	stdlog "log"
	"maps"
	"net"
	"net/http"
	"os"
	"sort"
	"sync"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/sirupsen/logrus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"

	"github.com/portcullis-proxy/portcullis/config"
	"github.com/portcullis-proxy/portcullis/internal/httpguard"
	"github.com/portcullis-proxy/portcullis/internal/logbuf"
	"github.com/portcullis-proxy/portcullis/internal/logfmt"
	"github.com/portcullis-proxy/portcullis/internal/metrics"
	"github.com/portcullis-proxy/portcullis/internal/registry"
	"github.com/portcullis-proxy/portcullis/internal/revocation"
	"github.com/portcullis-proxy/portcullis/internal/tracing"
	"github.com/portcullis-proxy/portcullis/pipeline"
	"github.com/portcullis-proxy/portcullis/proxy"
	"github.com/portcullis-proxy/portcullis/proxy/tunnel"
	"github.com/portcullis-proxy/portcullis/rules"
)

// Build information, set by the linker
// (-X github.com/portcullis-proxy/portcullis/internal/app.version=...) and
// read through [Build]; nothing else writes them.
var (
	version = "dev"
	commit  = ""
	date    = ""
)

// Build is the build's version, and its commit and date when the linker
// set them.
func Build() proxy.Version { return proxy.Version{Version: version, Commit: commit, Date: date} }

// NewLogger returns a logger configured by the log block.
func NewLogger(c config.Log) (*logrus.Logger, error) {
	l := logrus.New()
	l.Out = os.Stderr
	lvl, err := logrus.ParseLevel(c.Level)
	if err != nil {
		return nil, fmt.Errorf("log.level: %w", err)
	}
	l.SetLevel(lvl)
	if c.Format == "json" {
		// Byte for byte what logrus.JSONFormatter writes, without its
		// reflection (bench/README.md: proxy req/s 1.17x with json logs).
		l.SetFormatter(&logfmt.JSON{})
	} else {
		// Byte for byte what logrus.TextFormatter{DisableColors: true,
		// FullTimestamp: true} writes; the request line skips logrus.
		l.SetFormatter(&logfmt.Text{})
	}
	return l, nil
}

// Enable enables the handlers the configuration turns on, with their
// global configs, kind by kind and by name within a kind. A name
// portcullis does not know is an error naming the key.
func Enable(cat *pipeline.Catalog, cfg *config.Config, deps pipeline.Deps) error {
	for _, k := range pipeline.Kinds() {
		configs := cfg.Handlers(k)
		names := make([]string, 0, len(configs))
		for n := range configs {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			hc := configs[n]
			key := k.ConfigKey() + "." + n
			raw, err := hc.Raw()
			if err != nil {
				return &HandlerConfigError{Key: key + ".config", Err: err}
			}
			if !hc.Enabled {
				// A disabled handler portcullis does not have (an
				// Oathkeeper configuration listing keto_engine_acp_ory, say)
				// is harmless: warn, so a typo is still visible.
				if !cat.Known(k, n) && deps.Log != nil {
					deps.Log.Warn(fmt.Sprintf("%s: unknown handler %q (known: %v); it is disabled and ignored", key, n, cat.Names(k)))
				}
				continue
			}
			if err := cat.Enable(k, n, raw, deps); err != nil {
				return &HandlerConfigError{Key: key, Err: err}
			}
		}
	}
	return nil
}

// HandlerConfigError is a handler block of the configuration that could
// not be enabled; Key is its dotted path (authenticators.jwt).
type HandlerConfigError struct {
	Key string
	Err error
}

func (e *HandlerConfigError) Error() string { return e.Key + ": " + e.Err.Error() }
func (e *HandlerConfigError) Unwrap() error { return e.Err }

// positionedEnableError prefixes a [HandlerConfigError] with the file:line
// of its key.
func positionedEnableError(cfg *config.Config, err error) error {
	var he *HandlerConfigError
	if errors.As(err, &he) && cfg.File != "" {
		return fmt.Errorf("%s: %w", cfg.Position(he.Key), err)
	}
	return err
}

// Compiler returns the rule compiler for the configuration.
func Compiler(cat *pipeline.Catalog, cfg *config.Config) (*rules.Compiler, error) {
	strategy, err := cfg.Strategy()
	if err != nil {
		return nil, err
	}
	ws, err := cfg.WebSocketDefaults()
	if err != nil {
		return nil, err
	}
	return &rules.Compiler{Catalog: cat, Strategy: strategy, Fallback: cfg.Errors.Fallback, WebSocketDefaults: ws,
		GlobalConfig: globalConfigs(cfg)}, nil
}

// globalConfigs returns the handlers' global configs by kind and name, as
// [rules.Compiler.GlobalConfig] reads them: part of each rule's definition,
// so that a configuration reload that changes one changes the rules using
// the handler.
func globalConfigs(cfg *config.Config) func(k pipeline.Kind, name string) json.RawMessage {
	out := map[pipeline.Kind]map[string]json.RawMessage{}
	for _, k := range pipeline.Kinds() {
		out[k] = map[string]json.RawMessage{}
		for n, hc := range cfg.Handlers(k) {
			// A config that does not encode fails Enable before any rule
			// compiles.
			if raw, err := hc.Raw(); err == nil {
				out[k][n] = raw
			}
		}
	}
	return func(k pipeline.Kind, name string) json.RawMessage { return out[k][name] }
}

// Server is a running portcullis: the proxy and API listeners over one
// rule repository.
type Server struct {
	// Config is the configuration the server started with; after a
	// reload of the file, CurrentConfig is the one serving.
	Config *config.Config
	Log    *logrus.Logger
	// Catalog is the handler catalog of the starting configuration; a
	// reload builds its own (ReloadConfig).
	Catalog *pipeline.Catalog
	Rules   *rules.Repository
	Proxy   *proxy.Handler
	API     *proxy.API
	Tunnels *tunnel.Server
	Metrics *metrics.Metrics
	// Revocations applies and spreads revocations (admin API, logout
	// seen in the path, re-checks) and remembers them.
	Revocations *revocation.Service
	// ExtAuthz is the Envoy ext_authz service, served on serve.grpc.
	ExtAuthz *proxy.ExtAuthz

	ctx       context.Context
	cancel    context.CancelFunc
	listeners map[string]net.Listener
	servers   map[string]*http.Server
	grpc      *grpc.Server
	// tracerShutdown flushes and stops the tracer provider (nil: no tracing).
	tracerShutdown func(context.Context) error
	wg             sync.WaitGroup
	shutdown       []func(context.Context) error

	// reload is the configuration hot reload's state (reload.go).
	reload reloadState
	// logBuf is the log.buffer writer in front of Log's output; nil: off.
	logBuf *logbuf.Writer
}

// New assembles a server from the configuration and loads the rules. It
// does not listen yet.
func New(cfg *config.Config, log *logrus.Logger) (*Server, error) {
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{Config: cfg, Log: log, Catalog: registry.NewCatalog(), ctx: ctx, cancel: cancel,
		listeners: map[string]net.Listener{}, servers: map[string]*http.Server{}}
	if b := cfg.Log.Buffer; b.Size > 0 {
		// log.buffer: the server's lines go through a buffer in front of
		// the logger's output, flushed at the end of Shutdown (and of a
		// failed New), after which lines go straight through again.
		out := log.Out
		w, err := logbuf.New(out, logbuf.Options{Size: b.Size, Flush: b.Flush, OnError: func(err error) {
			fmt.Fprintf(os.Stderr, "portcullis: log write failed: %v\n", err)
		}})
		if err != nil {
			cancel()
			return nil, fmt.Errorf("log.buffer: %w", err)
		}
		s.logBuf = w
		log.SetOutput(w)
	}
	for _, w := range cfg.Warnings {
		log.Warn(w)
	}
	s.reload.current.Store(cfg)
	gctx, gcancel := context.WithCancel(ctx)
	s.reload.generation = gcancel
	deps, err := HandlerDeps(gctx, cfg, log)
	if err != nil {
		return s.abort(err)
	}
	s.Metrics = metrics.New()
	adminToken, err := cfg.Serve.API.Admin.ResolveToken()
	if err != nil {
		cancel()
		return nil, err
	}
	channels := tunnel.NewRegistry()
	ropts := revocation.Options{
		Closer: registryCloser{channels}, Log: log, Metrics: s.Metrics,
		TombstoneTTL: cfg.Revocation.TombstoneTTL, MaxTombstones: cfg.Revocation.MaxTombstones,
	}
	if u := cfg.Revocation.Redis.URL; u != "" {
		ch, err := revocation.NewRedis(revocation.RedisOptions{URL: u, Stream: cfg.Revocation.Redis.Stream,
			CatchUp: cfg.Revocation.TombstoneTTL, Log: log, Metrics: s.Metrics})
		if err != nil {
			cancel()
			return nil, fmt.Errorf("revocation.redis.%w", err)
		}
		ropts.Channel = ch
		s.OnShutdown(func(context.Context) error { return ch.Close() })
	}
	s.Revocations = revocation.New(ropts)
	deps.Revocations = s.Revocations
	if err := Enable(s.Catalog, cfg, deps); err != nil {
		return s.abort(positionedEnableError(cfg, err))
	}
	comp, err := Compiler(s.Catalog, cfg)
	if err != nil {
		return s.abort(err)
	}
	if len(cfg.AccessRules.Repositories) == 0 {
		log.Warn("access_rules.repositories is empty: every request will be answered 404")
	}
	s.Rules = &rules.Repository{
		Locations:        cfg.AccessRules.Repositories,
		Compiler:         comp,
		Log:              log,
		Client:           rulesClient(deps),
		PollInterval:     cfg.AccessRules.PollInterval,
		HTTPPollInterval: cfg.AccessRules.HTTPPollInterval,
	}
	s.Rules.OnReload = func(err error) {
		n := 0
		if set := s.Rules.Current(); set != nil {
			n = set.Len()
		}
		s.Metrics.Reload(err, n)
	}
	if err := s.Rules.Load(ctx); err != nil {
		return s.abort(err)
	}
	tp, err := tracing.New(ctx, cfg.Tracing, version)
	if err != nil {
		cancel()
		return nil, err
	}
	var tr *proxy.Tracing
	if tp != nil {
		tr = proxy.NewTracing(tp, cfg.Tracing.TrustIncoming)
		// Last of the shutdown work: the spans of the final requests and
		// tunnels are flushed.
		s.tracerShutdown = tp.Shutdown
	}
	transport := proxy.NewTransport()
	if t := cfg.Serve.Proxy.Timeout.Upstream; t > 0 {
		transport.ResponseHeaderTimeout = t
	}
	var upstreamTLS *tls.Config
	if ca := cfg.Serve.Proxy.UpstreamCAFile; ca != "" {
		pool, err := loadCAPool(ca)
		if err != nil {
			return s.abort(fmt.Errorf("serve.proxy.upstream_ca_file: %w", err))
		}
		upstreamTLS = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		transport.TLSClientConfig = upstreamTLS
	}
	relay, err := tunnelRelay(cfg.Serve.Proxy.WebSocketRelay)
	if err != nil {
		return s.abort(err)
	}
	s.Tunnels = tunnel.New(tunnel.Options{Log: log, TLSConfig: upstreamTLS, Metrics: s.Metrics,
		HandshakeTimeout: cfg.Serve.Proxy.Timeout.Upstream, Registry: channels, Revocations: s.Revocations, Relay: relay,
		CloseLead: closeLead(cfg.Serve.Proxy.WebSocketCloseLead)})
	s.OnShutdown(s.Tunnels.Shutdown)
	// A reload (the rules' sources, the configuration) re-evaluates the
	// open tunnels and streams against the rules it installs.
	s.Rules.OnSwap = func(_, next *rules.Set) { s.Tunnels.FollowRules(next) }
	// The three front ends over the one decision path share its options.
	decisions := proxy.DecisionOptions{Rules: s.Rules, Log: log, Observer: s.Metrics, Revocations: revoker{s.Revocations}, Tracing: tr}
	s.Proxy = proxy.NewHandler(proxy.HandlerOptions{
		DecisionOptions:       decisions,
		Transport:             transport,
		TrustForwardedHeaders: cfg.Serve.Proxy.TrustForwardedHeaders,
		MatchForwardedHost:    cfg.Serve.Proxy.MatchForwardedHost,
		Upgrade:               s.Tunnels,
		Stream:                s.Tunnels,
	})
	routes := s.apiRoutes(s.Catalog)
	if bc := cfg.Revocation.BackchannelLogout; bc.Path != "" {
		if err := bc.Validate(); err != nil {
			return s.abort(err)
		}
		h, err := revocation.NewBackchannel(revocation.BackchannelOptions{Issuer: bc.Issuer, Audience: bc.Audience,
			JWKSURLs: bc.JWKSURLs, MaxAge: bc.MaxAge, Revoker: s.Revocations, Log: log, Client: deps.HTTPClient})
		if err != nil {
			return s.abort(fmt.Errorf("revocation.backchannel_logout.%w", err))
		}
		routes[bc.Path] = h
	}
	if adminToken != "" {
		admin, err := proxy.NewAdmin(proxy.AdminOptions{Token: adminToken, Channels: channels, Revoker: revoker{s.Revocations}, Rules: s.Rules})
		if err != nil {
			return s.abort(err)
		}
		maps.Copy(routes, admin.Routes())
		log.Info("admin API enabled on the API listener (/admin/)")
	}
	s.API = proxy.NewAPI(proxy.APIOptions{
		DecisionOptions: decisions,
		Version:         Build(),
		Routes:          routes,
	})
	s.ExtAuthz = proxy.NewExtAuthz(decisions)
	return s, nil
}

// abort releases what New started before err stopped it.
func (s *Server) abort(err error) (*Server, error) {
	s.cancel()
	for _, f := range s.shutdown {
		_ = f(context.Background())
	}
	s.closeLog()
	return nil, err
}

// revoker lets the proxy's front ends use the revocation service.
type revoker struct{ *revocation.Service }

func (r revoker) Revoke(v proxy.Revocation) int {
	return r.Service.Revoke(revocation.Event{SessionID: v.SessionID, Subject: v.Subject, Rule: v.Rule,
		Reason: v.Reason, Source: v.Source, Until: v.Until})
}

// registryCloser lets the revocation service close the registry's live
// channels.
type registryCloser struct{ r *tunnel.Registry }

func (c registryCloser) CloseMatching(sessionID, subject, rule, reason string) int {
	return c.r.Revoke(tunnel.Selector{SessionID: sessionID, Subject: subject, Rule: rule}, reason)
}

func loadCAPool(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, errors.New("no PEM certificates found")
	}
	return pool, nil
}

// OnShutdown registers work for graceful shutdown (closing tunnels), run
// after the listeners stop accepting.
func (s *Server) OnShutdown(f func(context.Context) error) { s.shutdown = append(s.shutdown, f) }

// Listen binds the proxy and API listeners.
func (s *Server) Listen() error {
	t := s.Config.Serve.Proxy.Timeout
	proxyTimeouts := config.APITimeouts{Read: t.Read, ReadHeader: t.ReadHeader, Write: t.Write, Idle: t.Idle}
	add := func(name string, l config.Listener, h http.Handler, timeouts *config.APITimeouts) error {
		ln, err := net.Listen("tcp", l.Addr())
		if err != nil {
			return fmt.Errorf("serve.%s: %w", name, err)
		}
		srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, MaxHeaderBytes: 1 << 20,
			ErrorLog:    stdlog.New(s.Log.WriterLevel(logrus.DebugLevel), "", 0),
			BaseContext: func(net.Listener) context.Context { return s.ctx }}
		if t := timeouts; t != nil {
			srv.ReadTimeout, srv.ReadHeaderTimeout, srv.WriteTimeout, srv.IdleTimeout = t.Read, t.ReadHeader, t.Write, t.Idle
		}
		if l.TLS.Enabled() {
			cert, err := tls.LoadX509KeyPair(l.TLS.Cert.Path, l.TLS.Key.Path)
			if err != nil {
				ln.Close()
				return fmt.Errorf("serve.%s.tls: %w", name, err)
			}
			srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
			ln = tls.NewListener(ln, srv.TLSConfig)
		}
		// Requests with ambiguous framing (smuggling) are refused before
		// net/http reads them.
		ln = httpguard.Protect(srv, ln)
		s.listeners[name], s.servers[name] = ln, srv
		return nil
	}
	if err := add("proxy", s.Config.Serve.Proxy.Listener, s.Proxy, &proxyTimeouts); err != nil {
		return err
	}
	if err := add("api", s.Config.Serve.API.Listener, s.API, &s.Config.Serve.API.Timeout); err != nil {
		s.listeners["proxy"].Close()
		return err
	}
	if g := s.Config.Serve.GRPC; g.Port >= 0 {
		if err := s.listenGRPC(g, s.Config.Serve.API.Timeout); err != nil {
			s.listeners["proxy"].Close()
			s.listeners["api"].Close()
			return err
		}
	}
	if p := s.Config.Serve.Prometheus; p.Port >= 0 {
		mux := http.NewServeMux()
		mux.Handle(p.MetricsPath, s.Metrics.Handler())
		if err := add("prometheus", p.Listener, mux, nil); err != nil {
			for _, ln := range s.listeners {
				ln.Close()
			}
			return err
		}
	}
	return nil
}

// listenGRPC binds serve.grpc and prepares the gRPC server of the ext_authz
// service, with the API listener's timeouts (serve.api.timeout): read_header
// to complete a connection's handshake, write to answer each check (its
// context ends then, and with it any identity provider call), idle to close
// an unused connection; messages up to 1 MiB.
func (s *Server) listenGRPC(l config.Listener, t config.APITimeouts) error {
	ln, err := net.Listen("tcp", l.Addr())
	if err != nil {
		return fmt.Errorf("serve.grpc: %w", err)
	}
	opts := []grpc.ServerOption{
		grpc.KeepaliveParams(keepalive.ServerParameters{MaxConnectionIdle: t.Idle}),
		grpc.MaxRecvMsgSize(1 << 20),
		grpc.UnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			if t.Write <= 0 {
				return h(ctx, req)
			}
			ctx, cancel := context.WithTimeout(ctx, t.Write)
			defer cancel()
			return h(ctx, req)
		}),
	}
	if t.ReadHeader > 0 {
		opts = append(opts, grpc.ConnectionTimeout(t.ReadHeader))
	}
	if l.TLS.Enabled() {
		cert, err := tls.LoadX509KeyPair(l.TLS.Cert.Path, l.TLS.Key.Path)
		if err != nil {
			ln.Close()
			return fmt.Errorf("serve.grpc.tls: %w", err)
		}
		opts = append(opts, grpc.Creds(credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})))
	}
	s.grpc = grpc.NewServer(opts...)
	authv3.RegisterAuthorizationServer(s.grpc, s.ExtAuthz)
	s.listeners["grpc"] = ln
	return nil
}

// Addr returns the bound address of a listener ("proxy", "api").
func (s *Server) Addr(name string) string {
	if ln, ok := s.listeners[name]; ok {
		return ln.Addr().String()
	}
	return ""
}

// Start serves the bound listeners and watches the rule repositories in
// the background.
func (s *Server) Start() {
	s.wg.Add(1)
	go func() { defer s.wg.Done(); s.Rules.Watch(s.ctx) }()
	if s.Config.File != "" {
		s.wg.Add(1)
		go func() { defer s.wg.Done(); s.watchConfig(s.ctx) }()
	}
	s.wg.Add(1)
	go func() { defer s.wg.Done(); s.Revocations.Run(s.ctx) }()
	for name, srv := range s.servers {
		ln, srv, name := s.listeners[name], srv, name
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				s.Log.WithError(err).WithField("listener", name).Error("listener stopped")
			}
		}()
		s.Log.WithField("listener", name).WithField("address", ln.Addr().String()).Info("listening")
	}
	if s.grpc != nil {
		ln := s.listeners["grpc"]
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			if err := s.grpc.Serve(ln); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
				s.Log.WithError(err).WithField("listener", "grpc").Error("listener stopped")
			}
		}()
		s.Log.WithField("listener", "grpc").WithField("address", ln.Addr().String()).Info("listening")
	}
}

// Shutdown stops accepting, lets in-flight requests finish, runs the
// registered shutdown work (tunnels get 1001) and stops background work,
// all within ctx.
func (s *Server) Shutdown(ctx context.Context) error {
	var errs []error
	var wg sync.WaitGroup
	var mu sync.Mutex
	for _, srv := range s.servers {
		srv := srv
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := srv.Shutdown(ctx); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	if s.grpc != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			stopped := make(chan struct{})
			go func() { s.grpc.GracefulStop(); close(stopped) }()
			select {
			case <-stopped:
			case <-ctx.Done():
				s.grpc.Stop()
				<-stopped
			}
		}()
	}
	for _, f := range s.shutdown {
		if err := f(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	wg.Wait()
	if s.tracerShutdown != nil {
		if err := s.tracerShutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("tracing: %w", err))
		}
	}
	s.cancel()
	s.wg.Wait()
	s.closeLog()
	return errors.Join(errs...)
}

// FlushLog writes the lines log.buffer holds now (nothing when it is off).
func (s *Server) FlushLog() error {
	if s.logBuf == nil {
		return nil
	}
	return s.logBuf.Flush()
}

// closeLog flushes log.buffer and lets later lines through unbuffered.
func (s *Server) closeLog() {
	if s.logBuf != nil {
		_ = s.logBuf.Close()
	}
}

// closeLead is serve.proxy.websocket_close_lead as tunnel.Options.CloseLead:
// 0 there means never early, which the option spells negative (its zero is
// the default).
func closeLead(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}

// tunnelRelay is serve.proxy.websocket_relay as a [tunnel.Relay]; the
// schema allows only these values, and anything else is refused here too.
func tunnelRelay(name string) (tunnel.Relay, error) {
	switch name {
	case "", "goroutines":
		return tunnel.RelayGoroutines, nil
	case "poll":
		return tunnel.RelayPoll, nil
	}
	return 0, fmt.Errorf("serve.proxy.websocket_relay: %q is neither goroutines nor poll", name)
}
