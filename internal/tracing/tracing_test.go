package tracing

import (
	"context"
	"testing"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/trace"
)

func TestExtractIgnoresMalformedHeaders(t *testing.T) {
	cases := map[string]Header{
		"none":              nil,
		"empty":             {"traceparent": {""}},
		"garbage":           {"traceparent": {"garbage"}},
		"zero trace id":     {"traceparent": {"00-00000000000000000000000000000000-00f067aa0ba902b7-01"}},
		"zero span id":      {"traceparent": {"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01"}},
		"bad version":       {"traceparent": {"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}},
		"too long":          {"traceparent": {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-00"}},
		"uppercase hex":     {"traceparent": {"00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01"}},
		"capitalized key":   {"Traceparent": {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}},
		"non-hex":           {"traceparent": {"00-4bf92f3577b34da6a3ce929d0e0e47zz-00f067aa0ba902b7-01"}},
		"binary":            {"traceparent": {"\x00\xff\xfe"}},
		"tracestate alone":  {"tracestate": {"k=v"}},
		"empty value slice": {"traceparent": {}},
	}
	for name, h := range cases {
		t.Run(name, func(t *testing.T) {
			if sc := Extract(natsHeader(h)); sc.IsValid() {
				t.Errorf("Extract(%v) = %v, want an invalid span context", h, sc)
			}
		})
	}
}

func TestInjectExtractRoundTrip(t *testing.T) {
	if Inject(context.Background()) != nil {
		t.Error("Inject without a span should return nil")
	}
	sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{0xab, 1}, SpanID: trace.SpanID{0xcd, 2},
		TraceFlags: trace.FlagsSampled})
	h := Inject(trace.ContextWithSpanContext(context.Background(), sc))
	if got := h.Get("traceparent"); got != "00-ab010000000000000000000000000000-cd02000000000000-01" {
		t.Errorf("traceparent %q", got)
	}
	got := Extract(h)
	if !got.Equal(sc.WithRemote(true)) {
		t.Errorf("Extract(Inject(%v)) = %v", sc, got)
	}
}

func natsHeader(h Header) nats.Header { return nats.Header(h) }
