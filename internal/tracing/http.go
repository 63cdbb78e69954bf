package tracing

import (
	"context"
	"net/http"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// StartServerSpan starts the server span of HTTP request r to route (a pattern, never the raw
// path, which is an attribute), continuing the client's trace when it sent a traceparent.
func StartServerSpan(tracer trace.Tracer, r *http.Request, route string, attrs ...attribute.KeyValue) (context.Context, trace.Span) {
	ctx := Propagator.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
	attrs = append(attrs, semconv.HTTPRequestMethodKey.String(r.Method), semconv.HTTPRoute(route), semconv.URLPath(r.URL.Path))
	return tracer.Start(ctx, r.Method+" "+route, trace.WithSpanKind(trace.SpanKindServer), trace.WithAttributes(attrs...))
}

// EndServerSpan records the response status on span, as an error from 500 up (a 4xx is the
// client's doing, not the server's), and ends it.
func EndServerSpan(span trace.Span, status int) {
	span.SetAttributes(semconv.HTTPResponseStatusCode(status))
	if status >= 500 {
		span.SetStatus(codes.Error, http.StatusText(status))
	}
	span.End()
}
