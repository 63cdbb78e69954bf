package tracing

import (
	"context"
	"testing"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/trace"
)

func TestExtractIgnoresMalformedHeaders(t *testing.T) {
	t.Parallel()
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
			t.Parallel()
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

func TestEnabled(t *testing.T) {
	cases := map[string]struct {
		env  map[string]string
		want bool
	}{
		"nothing set":          {want: false},
		"base endpoint":        {env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, want: true},
		"traces endpoint":      {env: map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"}, want: true},
		"blank endpoint":       {env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "  "}, want: false},
		"SDK disabled":         {env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_SDK_DISABLED": "TRUE"}, want: false},
		"exporter none":        {env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_TRACES_EXPORTER": "none"}, want: false},
		"SDK disabled = false": {env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_SDK_DISABLED": "false"}, want: true},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			for _, k := range []string{"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_SDK_DISABLED", "OTEL_TRACES_EXPORTER"} {
				t.Setenv(k, tc.env[k])
			}
			if got := Enabled(); got != tc.want {
				t.Errorf("Enabled() = %v, want %v", got, tc.want)
			}
			tp, shutdown, err := Setup(context.Background(), "test", nil)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = shutdown(context.Background()) }()
			if (tp != nil) != tc.want {
				t.Errorf("Setup gave provider %v, want one: %v", tp, tc.want)
			}
		})
	}
}
