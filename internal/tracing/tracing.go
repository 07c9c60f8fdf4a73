// Package tracing builds the OpenTelemetry tracer provider the tracing
// block asks for: spans exported over OTLP/HTTP (protobuf) in batches, a
// ratio sampler that keeps a trusted parent's decision, and the service's
// resource. The standard OTEL_* environment variables apply to whatever the
// configuration leaves unset.
package tracing

import (
	"context"
	"fmt"
	"strings"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.37.0"

	"github.com/portcullis-proxy/portcullis/config"
)

// New returns the tracer provider for c, or nil when tracing is off
// (provider ""). version is the service.version of the spans. The caller
// shuts the provider down, which flushes the spans not yet exported.
func New(ctx context.Context, c config.Tracing, version string) (*sdktrace.TracerProvider, error) {
	if c.Provider != "otel" {
		return nil, nil
	}
	var opts []otlptracehttp.Option
	if u := c.Providers.OTLP.ServerURL; u != "" {
		if strings.Contains(u, "://") {
			opts = append(opts, otlptracehttp.WithEndpointURL(u))
		} else {
			opts = append(opts, otlptracehttp.WithEndpoint(u))
		}
	}
	if c.Providers.OTLP.Insecure {
		opts = append(opts, otlptracehttp.WithInsecure())
	}
	exp, err := otlptracehttp.New(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("tracing.providers.otlp: %w", err)
	}
	// Detectors apply in order, the later winning: OTEL_SERVICE_NAME and
	// OTEL_RESOURCE_ATTRIBUTES override tracing.service_name.
	res, err := resource.New(ctx,
		resource.WithTelemetrySDK(),
		resource.WithAttributes(semconv.ServiceName(c.ServiceName), semconv.ServiceVersion(version)),
		resource.WithFromEnv(),
	)
	if err != nil {
		return nil, fmt.Errorf("tracing: resource: %w", err)
	}
	popts := []sdktrace.TracerProviderOption{sdktrace.WithBatcher(exp), sdktrace.WithResource(res)}
	if r := c.Providers.OTLP.Sampling.SamplingRatio; r != nil {
		popts = append(popts, sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(*r))))
	}
	// Without a ratio the SDK reads OTEL_TRACES_SAMPLER (default: parent
	// based, always on).
	return sdktrace.NewTracerProvider(popts...), nil
}
