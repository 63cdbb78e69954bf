package tracing

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// StartGRPCServerSpan starts the server span of a gRPC call to method (the full method name,
// "/package.Service/Method"), continuing the client's trace when its metadata carries a
// traceparent. gRPC metadata (metadata.MD) has lowercase keys, as Header reads them.
func StartGRPCServerSpan(ctx context.Context, tracer trace.Tracer, md Header, method string, attrs ...attribute.KeyValue) (context.Context, trace.Span) {
	ctx = Propagator.Extract(ctx, md)
	attrs = append(attrs, semconv.RPCSystemNameGRPC, semconv.RPCMethod(method))
	return tracer.Start(ctx, method, trace.WithSpanKind(trace.SpanKindServer), trace.WithAttributes(attrs...))
}

// EndGRPCServerSpan records the call's status code (its name, "OK", "InvalidArgument") on
// span, as an error when the server is at fault, and ends it.
func EndGRPCServerSpan(span trace.Span, code string, serverFault bool) {
	span.SetAttributes(semconv.RPCResponseStatusCode(code))
	if serverFault {
		span.SetStatus(codes.Error, code)
	}
	span.End()
}
