package tracing_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/freightcast/freightcast/internal/ingest"
	"github.com/freightcast/freightcast/internal/metrics"
	"github.com/freightcast/freightcast/internal/queue"
	"github.com/freightcast/freightcast/internal/testing/natstest"
	"github.com/freightcast/freightcast/internal/testing/otlptest"
	"github.com/freightcast/freightcast/internal/testing/testenv"
	"github.com/freightcast/freightcast/internal/tracing"
	"github.com/freightcast/freightcast/internal/worker"
)

// pipeline is ingestion and one worker on a real nats-server, scoring with the real model.
type pipeline struct {
	js       jetstream.JetStream
	spec     queue.Spec
	ingest   *httptest.Server
	features []string
}

// startPipeline sets tracing up from the environment, once per component as in the pods, and
// serves ingestion. The returned func starts the worker and returns one that stops it and
// flushes both tracer providers; the worker starts later so that a test can read the queued
// messages first (the stream drops them once acknowledged).
func startPipeline(t *testing.T) (*pipeline, func() (stop func())) {
	ctx := context.Background()
	srv := natstest.Start(t)
	nc, js := natstest.Connect(t, srv.URL())
	spec := queue.Spec{Topology: queue.TopologyFor("ns1", "lanes"), Limits: queue.Limits{MaxMessages: 1000, MaxBytes: 1 << 20,
		MaxAge: time.Hour, DuplicateWindow: time.Minute, AckWait: 30 * time.Second, MaxDeliver: 3, MaxAckPending: 100, PredictionRetention: time.Hour}}
	if _, err := queue.Provision(ctx, js, spec); err != nil {
		t.Fatal(err)
	}
	m := testenv.FreightModel(t)
	logger := slog.New(slog.DiscardHandler)

	ingestTP, ingestShutdown, err := tracing.Setup(ctx, "freightcast-ingest", logger)
	if err != nil {
		t.Fatal(err)
	}
	h, err := ingest.New(ingest.Config{Conn: nc, Topology: spec.Topology, Features: m.Metadata().Features, MaxBodyBytes: 1 << 20,
		Registry: prometheus.NewRegistry(), Logger: logger, TracerProvider: ingestTP})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(h)
	t.Cleanup(hs.Close)

	workerTP, workerShutdown, err := tracing.Setup(ctx, "freightcast-inference", logger)
	if err != nil {
		t.Fatal(err)
	}
	wm, err := metrics.NewWorker(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	w, err := worker.New(worker.Config{JetStream: js, Topology: spec.Topology, Model: m, ModelName: "freight-delay-risk", ModelVersion: "1",
		BatchSize: 8, MaxDeliver: 3, Metrics: wm, Logger: logger, TracerProvider: workerTP})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("worker: %v", err)
			}
			for _, shutdown := range []func(context.Context) error{ingestShutdown, workerShutdown} {
				if err := shutdown(ctx); err != nil {
					t.Errorf("tracer provider shutdown: %v", err)
				}
			}
		})
	}
	start := func() func() {
		go func() { done <- w.Run(runCtx) }()
		t.Cleanup(stop)
		return stop
	}
	return &pipeline{js: js, spec: spec, ingest: hs, features: m.Metadata().Features}, start
}

// post sends events with the given ids, and a traceparent header unless it is "".
func (p *pipeline) post(t *testing.T, traceparent string, ids ...string) {
	var body bytes.Buffer
	for _, id := range ids {
		body.WriteString(`{"id":"` + id + `","features":{`)
		for i, f := range p.features {
			if i > 0 {
				body.WriteByte(',')
			}
			fmt.Fprintf(&body, "%q:%d", f, i%2)
		}
		body.WriteString("}}\n")
	}
	req, err := http.NewRequest(http.MethodPost, p.ingest.URL+"/v1/events", &body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-ndjson")
	if traceparent != "" {
		req.Header.Set("traceparent", traceparent)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	msg, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST /v1/events: %d %s", resp.StatusCode, msg)
	}
}

// waitPredicted waits until the prediction of id is stored.
func (p *pipeline) waitPredicted(t *testing.T, id string) {
	kv, err := p.js.KeyValue(context.Background(), p.spec.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 15*time.Second, "prediction for "+id, func() error {
		_, err := kv.Get(context.Background(), id)
		return err
	})
}

// queuedHeaders returns the headers of the queued messages by event id.
func (p *pipeline) queuedHeaders(t *testing.T) map[string]nats.Header {
	ctx := context.Background()
	s, err := p.js.Stream(ctx, p.spec.Stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]nats.Header{}
	for seq := info.State.FirstSeq; info.State.Msgs > 0 && seq <= info.State.LastSeq; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		out[m.Header.Get(nats.MsgIdHdr)] = m.Header
	}
	return out
}

func setEndpoint(t *testing.T, endpoint string) {
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "")
	t.Setenv("OTEL_SERVICE_NAME", "")
	t.Setenv("OTEL_TRACES_SAMPLER", "")
	t.Setenv("OTEL_SDK_DISABLED", "")
	t.Setenv("OTEL_TRACES_EXPORTER", "")
}

func TestTraceCrossesTheQueue(t *testing.T) {
	recv := otlptest.NewReceiver(t, "")
	setEndpoint(t, recv.URL())
	p, startWorker := startPipeline(t)

	const clientTrace = "0af7651916cd43dd8448eb211c80319c"
	p.post(t, "00-"+clientTrace+"-b7ad6b7169203331-01", "evt-1", "evt-2")
	headers := p.queuedHeaders(t)
	stop := startWorker()
	p.waitPredicted(t, "evt-1")
	p.waitPredicted(t, "evt-2")
	stop()

	requests, spans := recv.Received()
	if requests == 0 {
		t.Fatal("nothing was exported")
	}
	byName := map[string][]otlptest.Span{}
	for _, s := range spans {
		byName[s.Name] = append(byName[s.Name], s)
	}
	names := func() []string {
		var n []string
		for k := range byName {
			n = append(n, k)
		}
		return n
	}
	one := func(name string) otlptest.Span {
		t.Helper()
		if len(byName[name]) != 1 {
			t.Fatalf("%d spans named %q, want 1 (spans: %v)", len(byName[name]), name, names())
		}
		return byName[name][0]
	}
	server := one("POST /v1/events")
	send := one("send " + p.spec.Subject)
	if got := hex.EncodeToString(server.TraceId); got != clientTrace {
		t.Errorf("ingestion span trace id %s, want the client's %s", got, clientTrace)
	}
	if got := hex.EncodeToString(server.ParentSpanId); got != "b7ad6b7169203331" {
		t.Errorf("ingestion span parent %s, want the client's span", got)
	}
	if server.Service != "freightcast-ingest" || server.Kind != tracepb.Span_SPAN_KIND_SERVER {
		t.Errorf("ingestion span: service %q kind %v", server.Service, server.Kind)
	}
	if got := intAttr(server.Span, "http.response.status_code"); got != 202 {
		t.Errorf("http.response.status_code = %d, want 202", got)
	}
	if got := intAttr(server.Span, "freightcast.events"); got != 2 {
		t.Errorf("freightcast.events = %d, want 2", got)
	}
	if !bytes.Equal(send.ParentSpanId, server.SpanId) || !bytes.Equal(send.TraceId, server.TraceId) {
		t.Errorf("publish span is not the child of the request span")
	}
	// The context crossed NATS: each queued message carries the publish span's context.
	if len(headers) != 2 {
		t.Fatalf("%d messages queued, want 2", len(headers))
	}
	wantParent := "00-" + clientTrace + "-" + hex.EncodeToString(send.SpanId) + "-01"
	for id, h := range headers {
		if got := h.Get("traceparent"); got != wantParent {
			t.Errorf("message %s: traceparent %q, want %q", id, got, wantParent)
		}
	}

	// The worker's batch span(s) hold both events: parent and links lead to the publish span.
	var linked []string
	for _, s := range byName["process "+p.spec.Subject] {
		if s.Service != "freightcast-inference" || s.Kind != tracepb.Span_SPAN_KIND_CONSUMER {
			t.Errorf("batch span: service %q kind %v", s.Service, s.Kind)
		}
		if !bytes.Equal(s.TraceId, server.TraceId) || !bytes.Equal(s.ParentSpanId, send.SpanId) {
			t.Errorf("batch span in trace %x under %x, want trace %s under the publish span %x", s.TraceId, s.ParentSpanId, clientTrace, send.SpanId)
		}
		for _, l := range s.Links {
			if !bytes.Equal(l.TraceId, send.TraceId) || !bytes.Equal(l.SpanId, send.SpanId) {
				t.Errorf("batch span links to %x/%x, want the publish span", l.TraceId, l.SpanId)
			}
			for _, a := range l.Attributes {
				if a.Key == "messaging.message.id" {
					linked = append(linked, a.GetValue().GetStringValue())
				}
			}
		}
		for _, child := range []string{"model run", "store predictions"} {
			found := false
			for _, c := range byName[child] {
				found = found || bytes.Equal(c.ParentSpanId, s.SpanId)
			}
			if !found {
				t.Errorf("no %q span under batch span %x", child, s.SpanId)
			}
		}
	}
	slices.Sort(linked)
	if got := strings.Join(linked, ","); got != "evt-1,evt-2" {
		t.Errorf("batch spans link to events %q, want evt-1,evt-2", got)
	}
}

func TestNothingExportedWithoutEndpoint(t *testing.T) {
	recv := otlptest.NewReceiver(t, "")
	setEndpoint(t, "")
	// A receiver on the default port would not see this either; the one here proves no
	// component reaches for an endpoint it was not given.
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "")
	if tracing.Enabled() {
		t.Fatal("Enabled() with no endpoint")
	}
	p, startWorker := startPipeline(t)
	p.post(t, "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "evt-1")
	headers := p.queuedHeaders(t)
	if len(headers) != 1 {
		t.Fatalf("%d messages queued, want 1", len(headers))
	}
	stop := startWorker()
	p.waitPredicted(t, "evt-1")
	stop()
	for id, h := range headers {
		if v, ok := h["traceparent"]; ok {
			t.Errorf("message %s carries traceparent %q with tracing off", id, v)
		}
	}
	if requests, spans := recv.Received(); requests != 0 || len(spans) != 0 {
		t.Errorf("receiver got %d requests, %d spans; want none", requests, len(spans))
	}
}

func intAttr(s *tracepb.Span, key string) int64 {
	for _, a := range s.Attributes {
		if a.Key == key {
			return a.GetValue().GetIntValue()
		}
	}
	return -1
}
