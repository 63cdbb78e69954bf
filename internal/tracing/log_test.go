package tracing

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"testing"

	"github.com/google/go-cmp/cmp"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

func TestLogHandlerStampsTraceIDs(t *testing.T) {
	tp := sdktrace.NewTracerProvider()
	defer func() { _ = tp.Shutdown(context.Background()) }()
	ctx, span := tp.Tracer("test").Start(context.Background(), "op")
	defer span.End()
	sc := span.SpanContext()
	remote := trace.ContextWithRemoteSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{1}, SpanID: trace.SpanID{2}}))

	cases := map[string]struct {
		log  func(*slog.Logger)
		want map[string]any
	}{
		"traced context": {
			log:  func(l *slog.Logger) { l.InfoContext(ctx, "hello", "k", "v") },
			want: map[string]any{"msg": "hello", "k": "v", "trace_id": sc.TraceID().String(), "span_id": sc.SpanID().String()},
		},
		"remote, unsampled span context": {
			log:  func(l *slog.Logger) { l.WarnContext(remote, "hello") },
			want: map[string]any{"msg": "hello", "trace_id": "01000000000000000000000000000000", "span_id": "0200000000000000"},
		},
		"no span": {
			log:  func(l *slog.Logger) { l.InfoContext(context.Background(), "hello") },
			want: map[string]any{"msg": "hello"},
		},
		"without a context": {
			log:  func(l *slog.Logger) { l.Info("hello") },
			want: map[string]any{"msg": "hello"},
		},
		"attributes added by With are kept": {
			log:  func(l *slog.Logger) { l.With("pipeline", "p").InfoContext(ctx, "hello") },
			want: map[string]any{"msg": "hello", "pipeline": "p", "trace_id": sc.TraceID().String(), "span_id": sc.SpanID().String()},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			var buf bytes.Buffer
			l := slog.New(LogHandler(slog.NewJSONHandler(&buf, &slog.HandlerOptions{
				ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
					if a.Key == slog.TimeKey || a.Key == slog.LevelKey {
						return slog.Attr{}
					}
					return a
				},
			})))
			tc.log(l)
			var got map[string]any
			if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
				t.Fatalf("%q: %v", buf.String(), err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("record (-want +got):\n%s", diff)
			}
		})
	}
}

func TestLogHandlerDoesNotWrapTwice(t *testing.T) {
	h := LogHandler(slog.DiscardHandler)
	if LogHandler(h) != h {
		t.Error("wrapping a wrapped handler again should return it")
	}
}
