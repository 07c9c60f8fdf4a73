package tunnel_test

import (
	"context"
	"net/http"
	"net/url"
	"time"

	"github.com/portcullis-proxy/portcullis/pipeline"
	"github.com/portcullis-proxy/portcullis/proxy/tunnel"
	"github.com/portcullis-proxy/portcullis/rules"
)

// An authorised upgrade is handed to the tunnel server with the rule's
// policy, the session the pipeline produced and the request as it would go
// upstream; the server's owner shuts the tunnels down with the server.
func ExampleServer() {
	tunnels := tunnel.New(tunnel.Options{DialTimeout: 5 * time.Second})
	upstream, _ := url.Parse("http://127.0.0.1:4000")

	policy := rules.DefaultWebSocketPolicy().WebSocketPolicy
	policy.MaxLifetime = 30 * time.Minute
	policy.AllowedOrigins = map[string]bool{"https://app.example": true}

	srv := &http.Server{Addr: "127.0.0.1:8080", Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The pipeline ran here and allowed the request.
		session := &pipeline.Session{Subject: "alice", ExpiresAt: time.Now().Add(time.Hour)}
		out := r.Clone(r.Context())
		out.URL = upstream.JoinPath(r.URL.Path)
		out.Host = ""
		out.Header.Del("Connection")
		out.Header.Del("Upgrade")
		tunnels.ServeTunnel(w, r, tunnel.Request{RuleID: "chat", Policy: policy, Session: session, Upstream: out})
	})}
	go func() { _ = srv.ListenAndServe() }()

	// On SIGTERM: stop accepting, then say 1001 to every open tunnel.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = srv.Shutdown(ctx)
	_ = tunnels.Shutdown(ctx)
}
