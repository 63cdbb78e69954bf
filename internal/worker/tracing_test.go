package worker

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/freightcast/freightcast/internal/metrics"
	"github.com/freightcast/freightcast/internal/testing/natstest"
)

// TestWorkerTracesBatchesAndIgnoresMalformedContext feeds one batch whose messages carry a
// valid, a malformed, an all-zero and no traceparent: every event is predicted, and the batch
// span links to (and is the child of) the valid context only.
func TestWorkerTracesBatchesAndIgnoresMalformedContext(t *testing.T) {
	h := newHarness(t, 30*time.Second)
	const valid = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	h.publishWithHeader("e0", valid)
	h.publishWithHeader("e1", "not-a-traceparent")
	h.publishWithHeader("e2", "00-00000000000000000000000000000000-0000000000000000-01")
	h.publishWithHeader("e3", "")
	h.publishWithHeader("e4", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra-garbage-\x00")

	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	_, js := natstest.Connect(t, h.srv.URL())
	m, err := metrics.NewWorker(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	w, err := New(Config{JetStream: js, Topology: h.spec.Topology, Model: h.model, ModelName: "freight-delay-risk",
		ModelVersion: "1", BatchSize: 16, BatchLinger: 200 * time.Millisecond, MaxDeliver: h.spec.MaxDeliver, Metrics: m, TracerProvider: tp})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	wait := runWorker(ctx, t, w)
	h.waitPredicted(5, 15*time.Second)
	cancel()
	wait()
	h.checkExactlyOnce([]string{"e0", "e1", "e2", "e3", "e4"})

	wantTrace, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	wantParent, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
	var batches, links int
	byName := map[string]int{}
	for _, s := range rec.Ended() {
		byName[s.Name()]++
		if s.Name() != "process "+h.spec.Subject {
			continue
		}
		batches++
		links += len(s.Links())
		var linked []string
		for _, l := range s.Links() {
			linked = append(linked, l.SpanContext.TraceID().String()+"/"+l.SpanContext.SpanID().String())
		}
		if len(s.Links()) > 0 {
			if s.SpanContext().TraceID() != wantTrace || s.Parent().SpanID() != wantParent || !s.Parent().IsRemote() {
				t.Errorf("batch span %v has parent %v, want the valid message's context", s.SpanContext(), s.Parent())
			}
		}
		for _, l := range s.Links() {
			if l.SpanContext.TraceID() != wantTrace || l.SpanContext.SpanID() != wantParent {
				t.Errorf("batch span links to %v; only the valid context should be linked (links %v)", l.SpanContext, linked)
			}
		}
	}
	if batches == 0 {
		t.Fatalf("no batch span recorded; spans by name: %v", byName)
	}
	if links != 1 {
		t.Errorf("batch spans hold %d links, want 1 (the one valid traceparent)", links)
	}
	if byName["model run"] != batches || byName["store predictions"] != batches {
		t.Errorf("spans by name %v: want one model run and one store per batch (%d)", byName, batches)
	}
}
