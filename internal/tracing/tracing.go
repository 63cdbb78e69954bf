// Package tracing sets up OpenTelemetry tracing for the data plane and holds what the
// components share: the W3C trace context carried in NATS message headers, and a log/slog handler
// that stamps trace and span ids on records logged within a traced context.
//
// Tracing is off unless an OTLP endpoint is configured with the standard variables
// (OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or OTEL_EXPORTER_OTLP_ENDPOINT). Off means Setup returns a
// nil trace.TracerProvider, and every component treats nil as "do nothing": no span, no header,
// no allocation on the hot path. On, spans go over OTLP/HTTP (protobuf) through a batching
// processor; the exporter reads the other OTEL_EXPORTER_OTLP_* variables (headers, timeout,
// compression, TLS) and the SDK reads OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES,
// OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG (default parentbased_always_on).
//
// See docs/tracing.md.
package tracing

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// ScopeName is the instrumentation scope of every Freightcast span.
const ScopeName = "github.com/freightcast/freightcast"

// Propagator is the one context format Freightcast reads and writes, on HTTP requests and on
// queue messages: W3C Trace Context (traceparent, tracestate).
var Propagator propagation.TextMapPropagator = propagation.TraceContext{}

// Enabled reports whether the environment configures an OTLP traces endpoint, and tracing is
// not switched off with OTEL_SDK_DISABLED=true or OTEL_TRACES_EXPORTER=none.
func Enabled() bool {
	if strings.EqualFold(strings.TrimSpace(os.Getenv("OTEL_SDK_DISABLED")), "true") ||
		strings.EqualFold(strings.TrimSpace(os.Getenv("OTEL_TRACES_EXPORTER")), "none") {
		return false
	}
	return strings.TrimSpace(os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")) != "" ||
		strings.TrimSpace(os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT")) != ""
}

// Setup builds the process's tracer provider from the environment. Without an endpoint (see
// Enabled) it returns a nil provider and a shutdown that does nothing. Otherwise the provider
// exports over OTLP/HTTP; service is the service.name unless OTEL_SERVICE_NAME sets another.
// shutdown flushes the spans still buffered and stops the exporter: call it before exiting.
// The provider is also installed as the global one, and export errors go to log.
func Setup(ctx context.Context, service string, log *slog.Logger) (_ trace.TracerProvider, shutdown func(context.Context) error, _ error) {
	noop := func(context.Context) error { return nil }
	if !Enabled() {
		return nil, noop, nil
	}
	exp, err := otlptracehttp.New(ctx)
	if err != nil {
		return nil, noop, fmt.Errorf("tracing: OTLP exporter: %w", err)
	}
	// Later options win: OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES override the default name.
	res, err := resource.New(ctx,
		resource.WithAttributes(semconv.ServiceName(service)),
		resource.WithTelemetrySDK(),
		resource.WithFromEnv(),
	)
	if err != nil {
		return nil, noop, fmt.Errorf("tracing: resource: %w", err)
	}
	// No WithSampler: the SDK takes OTEL_TRACES_SAMPLER(_ARG), parent-based by default.
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(Propagator)
	if log != nil {
		otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) { log.Warn("tracing", "error", err) }))
	}
	return tp, tp.Shutdown, nil
}

// Tracer is the Freightcast tracer of tp, or nil when tp is nil (tracing off).
func Tracer(tp trace.TracerProvider) trace.Tracer {
	if tp == nil {
		return nil
	}
	return tp.Tracer(ScopeName)
}

// Header adapts NATS message headers to the propagator. NATS header keys are case-sensitive;
// the W3C names are lowercase, and that is how they are written and read.
type Header nats.Header

var _ propagation.TextMapCarrier = Header(nil)

// Get returns the first value of key.
func (h Header) Get(key string) string {
	if v := h[key]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// Set replaces the values of key.
func (h Header) Set(key, value string) { h[key] = []string{value} }

// Keys lists the keys present.
func (h Header) Keys() []string {
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	return keys
}

// Inject returns the trace context of ctx as NATS headers (traceparent and, if any,
// tracestate), or nil when ctx carries no valid span context. The values may be shared by many
// messages: nothing writes into them.
func Inject(ctx context.Context) nats.Header {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return nil
	}
	h := make(Header, 2)
	Propagator.Inject(ctx, h)
	return nats.Header(h)
}

// Extract returns the span context a queue message carries, or an invalid one when it carries
// none or a malformed one (which is then ignored).
func Extract(h nats.Header) trace.SpanContext {
	if len(h["traceparent"]) == 0 {
		return trace.SpanContext{}
	}
	return trace.SpanContextFromContext(Propagator.Extract(context.Background(), Header(h)))
}
