package proxy

import (
	"context"
	"errors"
	"net/http"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/portcullis-proxy/portcullis/pipeline"
	"github.com/portcullis-proxy/portcullis/rules"
)

// Tracing makes the spans of the front ends: one per request (proxy,
// /decisions, ext_authz Check), with children for the rule match, each
// authenticator tried (with its outcome), the authorizer, each mutator,
// the upstream round trip and each WebSocket tunnel (with its close
// reason). A nil *Tracing makes none and costs one nil check per request.
type Tracing struct {
	tracer trace.Tracer
	prop   propagation.TextMapPropagator
	trust  bool
}

// NewTracing returns the front ends' tracing over tp. With trustIncoming a
// request continues the W3C trace context (traceparent, tracestate) its
// client sent; without it every request starts a trace of its own.
func NewTracing(tp trace.TracerProvider, trustIncoming bool) *Tracing {
	return &Tracing{tracer: tp.Tracer("github.com/portcullis-proxy/portcullis/proxy"), prop: propagation.TraceContext{}, trust: trustIncoming}
}

// Attribute keys of portcullis's spans.
const (
	attrRule        = attribute.Key("portcullis.rule")
	attrDecision    = attribute.Key("portcullis.decision")
	attrOutcome     = attribute.Key("portcullis.outcome")
	attrHandler     = attribute.Key("portcullis.handler")
	attrCloseReason = attribute.Key("portcullis.tunnel.close_reason")
)

// startRequest starts the span of one request a front end answers; header
// carries the client's trace context, read only when trusted.
func (t *Tracing) startRequest(ctx context.Context, name, method string, header http.Header) (context.Context, trace.Span) {
	if t.trust {
		ctx = t.prop.Extract(ctx, propagation.HeaderCarrier(header))
	} else {
		// A fresh root: whatever span the context carries (none, from
		// net/http) is not the client's to choose.
		ctx = trace.ContextWithSpanContext(ctx, trace.SpanContext{})
	}
	return t.tracer.Start(ctx, name, trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(attribute.String("http.request.method", method)))
}

// endRequest records the request's outcome on its span and ends it.
func endRequest(span trace.Span, out *outcome, status int) {
	span.SetAttributes(attrRule.String(out.RuleID()), attrDecision.String(out.Decision()),
		attribute.Int("http.response.status_code", status))
	if status >= 500 {
		span.SetStatus(codes.Error, http.StatusText(status))
	}
	span.End()
}

// traceID is the request's trace id for the log line, "" when untraced.
func traceID(span trace.Span) string {
	if span == nil {
		return ""
	}
	if sc := span.SpanContext(); sc.HasTraceID() {
		return sc.TraceID().String()
	}
	return ""
}

// observer returns the stage observer that makes the decision path's
// child spans of the request span in ctx.
func (t *Tracing) observer(ctx context.Context) rules.StageObserver {
	return spanStages{ctx: ctx, tracer: t.tracer}
}

// spanStages makes one span per stage, and one for the rule match.
type spanStages struct {
	ctx    context.Context
	tracer trace.Tracer
}

func (o spanStages) StageStart(stage rules.Stage, handler string, _ *http.Request, s *pipeline.Session) func(error) {
	_, span := o.tracer.Start(o.ctx, string(stage)+" "+handler, trace.WithAttributes(attrHandler.String(handler)))
	return func(err error) {
		switch {
		case errors.Is(err, pipeline.ErrNotResponsible):
			span.SetAttributes(attrOutcome.String("not_responsible"))
		case err != nil:
			span.SetAttributes(attrOutcome.String(map[rules.Stage]string{rules.StageAuthenticator: "rejected", rules.StageAuthorizer: "denied", rules.StageMutator: "failed"}[stage]),
				attribute.Int("http.response.status_code", pipeline.StatusOf(err)))
			span.SetStatus(codes.Error, pipeline.AsError(err).Reason)
		case stage == rules.StageAuthenticator:
			span.SetAttributes(attrOutcome.String("accepted"))
		case stage == rules.StageAuthorizer:
			span.SetAttributes(attrOutcome.String("allowed"))
		default:
			span.SetAttributes(attrOutcome.String("ok"))
		}
		span.End()
	}
}

// MatchStart implements matchObserver.
func (o spanStages) MatchStart() func(rule string, err error) {
	_, span := o.tracer.Start(o.ctx, "rule match")
	return func(rule string, err error) {
		span.SetAttributes(attrRule.String(rule))
		if err != nil {
			span.SetAttributes(attribute.Int("http.response.status_code", pipeline.StatusOf(err)))
		}
		span.End()
	}
}

// matchObserver is implemented by stage observers that also want to know
// about the rule match; the decision path (decide) tells them.
type matchObserver interface {
	MatchStart() (done func(rule string, err error))
}

// tracedTransport is the upstream transport when tracing is on: one client
// span per round trip, whose context goes upstream in traceparent (the
// client's own trace headers are replaced).
type tracedTransport struct {
	base http.RoundTripper
	t    *Tracing
}

func (tt tracedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx, span := tt.t.tracer.Start(req.Context(), "upstream", trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attribute.String("http.request.method", req.Method), attribute.String("server.address", req.URL.Host)))
	// A RoundTripper must not modify the request it is given.
	out := req.Clone(ctx)
	out.Header.Del("Traceparent")
	out.Header.Del("Tracestate")
	tt.t.prop.Inject(ctx, propagation.HeaderCarrier(out.Header))
	res, err := tt.base.RoundTrip(out)
	if err != nil {
		span.SetStatus(codes.Error, "upstream unreachable")
		span.End()
		return nil, err
	}
	span.SetAttributes(attribute.Int("http.response.status_code", res.StatusCode))
	if res.StatusCode >= 500 {
		span.SetStatus(codes.Error, http.StatusText(res.StatusCode))
	}
	span.End()
	return res, nil
}

// TunnelSpan returns the function that ends the tunnel span started for the
// upgrade whose context is ctx, recording the close reason; it does nothing
// when ctx carries no recording span.
func TunnelSpan(ctx context.Context) func(reason string) {
	span := trace.SpanFromContext(ctx)
	if !span.IsRecording() {
		return nil
	}
	return func(reason string) {
		span.SetAttributes(attrCloseReason.String(reason))
		span.End()
	}
}
