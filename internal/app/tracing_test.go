package app_test

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
	collector "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"

	"github.com/portcullis-proxy/portcullis/testsupport/handlertest"
	"github.com/portcullis-proxy/portcullis/testsupport/servertest"
	"github.com/portcullis-proxy/portcullis/testsupport/wsecho"
)

// otlpReceiver is an OTLP/HTTP trace receiver: it decodes each export as
// the protobuf ExportTraceServiceRequest the collector would.
type otlpReceiver struct {
	*httptest.Server
	mu    sync.Mutex
	spans []receivedSpan
}

// receivedSpan is one exported span with the service that sent it.
type receivedSpan struct {
	service string
	span    *tracepb.Span
}

func newOTLPReceiver(t *testing.T) *otlpReceiver {
	rc := &otlpReceiver{}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/traces" || r.Header.Get("Content-Type") != "application/x-protobuf" {
			t.Errorf("export to %s as %q, want /v1/traces as application/x-protobuf", r.URL.Path, r.Header.Get("Content-Type"))
			http.Error(w, "unexpected", http.StatusBadRequest)
			return
		}
		body, _ := io.ReadAll(r.Body)
		var req collector.ExportTraceServiceRequest
		if err := proto.Unmarshal(body, &req); err != nil {
			t.Errorf("export is not an ExportTraceServiceRequest: %v", err)
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		rc.mu.Lock()
		for _, rs := range req.GetResourceSpans() {
			service := ""
			for _, a := range rs.GetResource().GetAttributes() {
				if a.GetKey() == "service.name" {
					service = a.GetValue().GetStringValue()
				}
			}
			for _, ss := range rs.GetScopeSpans() {
				for _, sp := range ss.GetSpans() {
					rc.spans = append(rc.spans, receivedSpan{service: service, span: sp})
				}
			}
		}
		rc.mu.Unlock()
		out, _ := proto.Marshal(&collector.ExportTraceServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.Write(out)
	}))
	t.Cleanup(rc.Close)
	return rc
}

// trace returns the spans of one trace id (hex), by name.
func (rc *otlpReceiver) trace(id string) map[string]receivedSpan {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	out := map[string]receivedSpan{}
	for _, s := range rc.spans {
		if hex.EncodeToString(s.span.GetTraceId()) == id {
			out[s.span.GetName()] = s
		}
	}
	return out
}

func attr(s *tracepb.Span, key string) string {
	for _, a := range s.GetAttributes() {
		if a.GetKey() == key {
			switch v := a.GetValue(); {
			case v.GetStringValue() != "":
				return v.GetStringValue()
			default:
				return fmt.Sprint(v.GetIntValue())
			}
		}
	}
	return ""
}

// tracingRules: /open/ is allowed, /closed/ denied, /ws a WebSocket
// tunnel to WSUPSTREAM that lives 300ms; every rule names the subject.
var tracingRules = handlertest.Rules(
	handlertest.Rule{ID: "open", URL: "<https?>://<[^/]+>/open/<.*>", Mutators: []string{"header"}, Upstream: "UPSTREAM"},
	handlertest.Rule{ID: "closed", URL: "<https?>://<[^/]+>/closed/<.*>", Authorizer: "deny", Mutators: []string{"header"}, Upstream: "UPSTREAM"},
	handlertest.Rule{ID: "ws", URL: "<https?>://<[^/]+>/ws", Mutators: []string{"header"}, Upstream: "WSUPSTREAM", More: []string{"websocket: {max_lifetime: 300ms}"}},
)

// TestTracingExportsOTLP runs the whole server with tracing on against a
// real OTLP/HTTP receiver: every request is a span with children for the
// rule match, each authenticator tried with its outcome, the authorizer,
// the mutators and the upstream round trip, whose context goes upstream in
// traceparent; a tunnel's span carries its close reason; the trace id is in
// the request log line; a client's traceparent is continued only when
// trusted.
func TestTracingExportsOTLP(t *testing.T) {
	rc := newOTLPReceiver(t)
	var upMu sync.Mutex
	var upTrace []string
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		upMu.Lock()
		upTrace = append(upTrace, r.Header.Get("Traceparent"))
		upMu.Unlock()
	}))
	defer up.Close()
	lastUpstreamTrace := func() string { upMu.Lock(); defer upMu.Unlock(); return upTrace[len(upTrace)-1] }
	echo := wsecho.Start(t, wsecho.Options{})
	rulesYAML := strings.NewReplacer("WSUPSTREAM", echo.URL, "UPSTREAM", up.URL).Replace(tracingRules)
	// Batches are exported every 50 ms (OTEL_BSP_SCHEDULE_DELAY, a standard
	// variable the SDK reads).
	t.Setenv("OTEL_BSP_SCHEDULE_DELAY", "50")
	tracingYAML := func(trust bool) string {
		return fmt.Sprintf(`
authenticators: {anonymous: {enabled: true}}
authorizers: {allow: {enabled: true}, deny: {enabled: true}}
mutators: {header: {enabled: true, config: {headers: {X-User: "{{ print .Subject }}"}}}}
log: {format: json}
serve:
  proxy: {host: 127.0.0.1, port: 0}
  api: {host: 127.0.0.1, port: 0}
  prometheus: {port: -1}
  grpc: {host: 127.0.0.1, port: 0}
tracing:
  provider: otel
  service_name: edge
  trust_incoming: %v
  providers:
    otlp:
      server_url: %s
      insecure: true
      sampling: {sampling_ratio: 1}
`, trust, strings.TrimPrefix(rc.URL, "http://"))
	}
	const clientTrace, clientSpan = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	traceparent := "00-" + clientTrace + "-" + clientSpan + "-01"

	untrusted := startServer(t, tracingYAML(false), rulesYAML)

	get := func(s *servertest.Server, path string, header map[string]string) {
		t.Helper()
		req, _ := http.NewRequest("GET", s.URL()+path, nil)
		for k, v := range header {
			req.Header.Set(k, v)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
	}
	// logTrace is the trace id of the last request line for path.
	logTrace := func(s *servertest.Server, path string) string {
		t.Helper()
		id := ""
		for _, line := range strings.Split(s.Logs(), "\n") {
			var m map[string]any
			if json.Unmarshal([]byte(line), &m) == nil && m["msg"] == "request" && m["path"] == path {
				id, _ = m["trace_id"].(string)
			}
		}
		if id == "" {
			t.Fatalf("no request line with a trace_id for %s:\n%s", path, s.Logs())
		}
		return id
	}
	waitSpans := func(id string, names ...string) map[string]receivedSpan {
		t.Helper()
		var got map[string]receivedSpan
		deadline := time.Now().Add(15 * time.Second)
		for {
			got = rc.trace(id)
			missing := 0
			for _, n := range names {
				if _, ok := got[n]; !ok {
					missing++
				}
			}
			if missing == 0 {
				return got
			}
			if time.Now().After(deadline) {
				have := []string{}
				for n := range got {
					have = append(have, n)
				}
				t.Fatalf("trace %s: spans %v, want %v", id, have, names)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	t.Run("allowed request", func(t *testing.T) {
		get(untrusted, "/open/a", map[string]string{"Traceparent": traceparent})
		id := logTrace(untrusted, "/open/a")
		if id == clientTrace {
			t.Fatal("an untrusted client chose the trace id")
		}
		spans := waitSpans(id, "proxy GET", "rule match", "authenticator anonymous", "authorizer allow", "mutator header", "upstream")
		root, upstream := spans["proxy GET"], spans["upstream"]
		if len(root.span.GetParentSpanId()) != 0 {
			t.Errorf("the request span has a parent: the client's traceparent was trusted")
		}
		if root.service != "edge" || root.span.GetKind() != tracepb.Span_SPAN_KIND_SERVER {
			t.Errorf("request span: service %q kind %v, want edge, server", root.service, root.span.GetKind())
		}
		if attr(root.span, "portcullis.rule") != "open" || attr(root.span, "portcullis.decision") != "allowed" || attr(root.span, "http.response.status_code") != "200" {
			t.Errorf("request span attributes %v", root.span.GetAttributes())
		}
		for _, n := range []string{"rule match", "authenticator anonymous", "authorizer allow", "mutator header", "upstream"} {
			if string(spans[n].span.GetParentSpanId()) != string(root.span.GetSpanId()) {
				t.Errorf("%s is not a child of the request span", n)
			}
		}
		if got := attr(spans["authenticator anonymous"].span, "portcullis.outcome"); got != "accepted" {
			t.Errorf("authenticator outcome %q, want accepted", got)
		}
		want := "00-" + id + "-" + hex.EncodeToString(upstream.span.GetSpanId()) + "-01"
		if got := lastUpstreamTrace(); got != want {
			t.Errorf("upstream traceparent %q, want %q (the upstream span)", got, want)
		}
	})

	t.Run("denied request", func(t *testing.T) {
		get(untrusted, "/closed/a", nil)
		spans := waitSpans(logTrace(untrusted, "/closed/a"), "proxy GET", "authorizer deny")
		if got := attr(spans["authorizer deny"].span, "portcullis.outcome"); got != "denied" {
			t.Errorf("authorizer outcome %q, want denied", got)
		}
		if _, ok := spans["upstream"]; ok {
			t.Error("a denied request has an upstream span")
		}
		get(untrusted, "/open/b", map[string]string{"Authorization": "Bearer x"})
		spans = waitSpans(logTrace(untrusted, "/open/b"), "proxy GET", "authenticator anonymous")
		if got := attr(spans["authenticator anonymous"].span, "portcullis.outcome"); got != "not_responsible" {
			t.Errorf("authenticator outcome %q, want not_responsible", got)
		}
	})

	t.Run("tunnel", func(t *testing.T) {
		tu, status := untrusted.DialTunnel(t, ws.Dialer{}, "/ws")
		if tu == nil {
			t.Fatalf("upgrade: %d, want 101", status)
		}
		for {
			if _, err := wsutil.ReadServerText(tu); err != nil {
				break // closed at max_lifetime
			}
		}
		spans := waitSpans(logTrace(untrusted, "/ws"), "proxy GET", "websocket tunnel")
		if got := attr(spans["websocket tunnel"].span, "portcullis.tunnel.close_reason"); got != "max_lifetime" {
			t.Errorf("tunnel close reason %q, want max_lifetime", got)
		}
	})

	t.Run("decision API and ext_authz", func(t *testing.T) {
		req, _ := http.NewRequest("GET", untrusted.APIURL()+"/decisions/closed/d", nil)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		conn, err := grpc.NewClient(untrusted.Addr("grpc"), grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := authv3.NewAuthorizationClient(conn).Check(ctx, &authv3.CheckRequest{Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{
			Http: &authv3.AttributeContext_HttpRequest{Method: "GET", Scheme: "http", Host: "app.example", Path: "/open/g"}}}}); err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct{ root, stage, outcome string }{
			{"decision GET", "authorizer deny", "denied"},
			{"check GET", "mutator header", "ok"},
		} {
			deadline := time.Now().Add(15 * time.Second)
			for {
				var root *tracepb.Span
				rc.mu.Lock()
				for _, s := range rc.spans {
					if s.span.GetName() == tc.root {
						root = s.span
					}
				}
				rc.mu.Unlock()
				if root != nil {
					spans := rc.trace(hex.EncodeToString(root.GetTraceId()))
					if st, ok := spans[tc.stage]; ok {
						if got := attr(st.span, "portcullis.outcome"); got != tc.outcome {
							t.Errorf("%s: %s outcome %q, want %q", tc.root, tc.stage, got, tc.outcome)
						}
						if _, ok := spans["rule match"]; !ok {
							t.Errorf("%s: no rule match span", tc.root)
						}
						break
					}
				}
				if time.Now().After(deadline) {
					t.Fatalf("no %s span with a %s child", tc.root, tc.stage)
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
	})

	t.Run("trusted traceparent is continued", func(t *testing.T) {
		t.Setenv("OTEL_SERVICE_NAME", "from-env")
		trusted := startServer(t, tracingYAML(true), rulesYAML)
		get(trusted, "/open/c", map[string]string{"Traceparent": traceparent})
		if id := logTrace(trusted, "/open/c"); id != clientTrace {
			t.Fatalf("trace id %s, want the client's %s", id, clientTrace)
		}
		spans := waitSpans(clientTrace, "proxy GET", "upstream")
		if got := hex.EncodeToString(spans["proxy GET"].span.GetParentSpanId()); got != clientSpan {
			t.Errorf("request span parent %s, want the client's span %s", got, clientSpan)
		}
		if spans["proxy GET"].service != "from-env" {
			t.Errorf("service %q, want OTEL_SERVICE_NAME's from-env", spans["proxy GET"].service)
		}
		if got := lastUpstreamTrace(); !strings.HasPrefix(got, "00-"+clientTrace+"-") {
			t.Errorf("upstream traceparent %q, want the client's trace", got)
		}
	})
}
