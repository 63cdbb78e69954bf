package ingest

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/freightcast/freightcast/internal/event"
	"github.com/freightcast/freightcast/internal/testing/cputime"
)

// The benchmarks compare ingestion with its anchor, raw asynchronous JetStream publishing of the
// same messages to the same kind of server (embedded, file store, message ids), in one run:
//
//	go test -run=NONE -bench=. -benchtime=5s ./internal/ingest
//
// Figures and analysis: docs/benchmarks-ingest.md.

// benchEnv serves ingestion on a stream that never fills up during a benchmark, untraced.
func benchEnv(b *testing.B) *env { return benchEnvTraced(b, nil) }

// benchEnvTraced is benchEnv with the tracer provider tp (nil: tracing off, as without an
// OTLP endpoint).
func benchEnvTraced(b *testing.B, tp trace.TracerProvider) *env {
	spec := testSpec(1 << 40)
	spec.MaxBytes = 16 << 30
	spec.DuplicateWindow = 2 * time.Minute
	return newEnv(b, spec, Config{MaxBodyBytes: 1 << 20, TracerProvider: tp})
}

// sampledDropped is tracing on at its most expensive for ingestion: every request sampled and
// recorded, every message given a traceparent, but spans dropped when they end instead of
// exported, so that the figure is the instrumentation's cost, not an exporter's.
func sampledDropped(b *testing.B) trace.TracerProvider {
	tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.AlwaysSample()))
	b.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	return tp
}

// benchEvent is a ~200-byte client event with a unique id.
func benchEvent(buf []byte, id int64) []byte {
	buf = append(buf, `{"id":"bench-`...)
	buf = strconv.AppendInt(buf, id, 10)
	return append(buf, `","features":{"port_congestion_index":0.73,"weather_severity":2.5,"distance_km":8450.25},"shipment":{"from":"NLRTM","to":"SGSIN","carrier":"MAEU","teu":2}}`...)
}

var benchSeq atomic.Int64

func reportEventsPerSecond(b *testing.B, events int64) {
	b.ReportMetric(float64(events)/b.Elapsed().Seconds(), "events/s")
}

// anchorPublish publishes n queue messages as ingestion would produce them, with no HTTP and no
// parsing, and waits for every ack: the ceiling ingestion is measured against.
func anchorPublish(b *testing.B, js jetstream.JetStream, subject string, n int) {
	received := time.Now()
	var payload []byte
	for range n {
		id := "anchor-" + strconv.FormatInt(benchSeq.Add(1), 10)
		payload = event.AppendEncode(payload[:0], &event.Event{ID: id, Features: []float64{0.73, 2.5, 8450.25},
			Shipment: []byte(`{"from":"NLRTM","to":"SGSIN","carrier":"MAEU","teu":2}`), ReceivedAt: received})
		data := bytes.Clone(payload)
		if _, err := js.PublishMsgAsync(&nats.Msg{Subject: subject, Data: data}, jetstream.WithMsgID(id), jetstream.WithStallWait(30*time.Second)); err != nil {
			b.Fatal(err)
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(30 * time.Second):
		b.Fatal("acks did not arrive within 30s")
	}
}

func anchorJetStream(b *testing.B, e *env) jetstream.JetStream {
	js, err := jetstream.New(e.nc, jetstream.WithPublishAsyncMaxPending(16384))
	if err != nil {
		b.Fatal(err)
	}
	return js
}

// BenchmarkAnchorAsyncPublish is the anchor alone.
func BenchmarkAnchorAsyncPublish(b *testing.B) {
	e := benchEnv(b)
	js := anchorJetStream(b, e)
	b.ResetTimer()
	anchorPublish(b, js, e.spec.Subject, b.N)
	reportEventsPerSecond(b, int64(b.N))
}

// poster sends bodies of perBody fresh events to the ingestion API.
type poster struct {
	client      *http.Client
	url         string
	contentType string
	perBody     int
	// event appends one event with the id; benchEvent when nil.
	event func(buf []byte, id int64) []byte
}

func newPoster(e *env, contentType string, perBody int) *poster {
	return &poster{
		client: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}, Timeout: 30 * time.Second},
		url:    e.http.URL + "/v1/events", contentType: contentType, perBody: perBody,
	}
}

// post sends one body, reusing buf, and returns it for the next call.
func (p *poster) post(b *testing.B, buf []byte) ([]byte, bool) {
	buf = buf[:0]
	event := p.event
	if event == nil {
		event = benchEvent
	}
	for range p.perBody {
		buf = event(buf, benchSeq.Add(1))
		buf = append(buf, '\n')
	}
	resp, err := p.client.Post(p.url, p.contentType, bytes.NewReader(buf))
	if err != nil {
		b.Error(err)
		return buf, false
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		b.Errorf("status %d", resp.StatusCode)
		return buf, false
	}
	return buf, true
}

// postConcurrently sends bodies bodies from clients goroutines and waits for all answers.
func (p *poster) postConcurrently(b *testing.B, bodies, clients int) {
	var wg sync.WaitGroup
	var next atomic.Int64
	for range clients {
		wg.Go(func() {
			var buf []byte
			ok := true
			for ok && next.Add(1) <= int64(bodies) {
				buf, ok = p.post(b, buf)
			}
		})
	}
	wg.Wait()
}

// benchPost runs clients in parallel, each POSTing bodies of perBody events.
func benchPost(b *testing.B, contentType string, perBody, clientsPerCPU int) {
	p := newPoster(benchEnv(b), contentType, perBody)
	b.SetParallelism(clientsPerCPU)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		var buf []byte
		ok := true
		for ok && pb.Next() {
			buf, ok = p.post(b, buf)
		}
	})
	reportEventsPerSecond(b, int64(b.N)*int64(perBody))
}

// BenchmarkIngestSingle: one JSON event per request, 16 concurrent clients per CPU.
func BenchmarkIngestSingle(b *testing.B) { benchPost(b, "application/json", 1, 16) }

// BenchmarkIngestNDJSON100: 100 events per NDJSON request, 4 concurrent clients per CPU.
func BenchmarkIngestNDJSON100(b *testing.B) { benchPost(b, "application/x-ndjson", 100, 4) }

// benchVersusAnchor alternates rounds of the anchor and of ingestion on one server, so that
// both see the same load from whatever else runs on the machine, and reports both rates and
// their ratio. Each iteration is one round of roundEvents events on each side.
func benchVersusAnchor(b *testing.B, contentType string, perBody, clients int) {
	benchVersusAnchorTraced(b, nil, contentType, perBody, clients)
}

func benchVersusAnchorTraced(b *testing.B, tp trace.TracerProvider, contentType string, perBody, clients int) {
	const roundEvents = 2000
	e := benchEnvTraced(b, tp)
	js := anchorJetStream(b, e)
	p := newPoster(e, contentType, perBody)
	var anchorTime, ingestTime, anchorCPU, ingestCPU time.Duration
	b.ResetTimer()
	for range b.N {
		start, startCPU := time.Now(), cputime.Process()
		anchorPublish(b, js, e.spec.Subject, roundEvents)
		mid, midCPU := time.Now(), cputime.Process()
		p.postConcurrently(b, roundEvents/perBody, clients)
		anchorTime += mid.Sub(start)
		ingestTime += time.Since(mid)
		anchorCPU += midCPU - startCPU
		ingestCPU += cputime.Process() - midCPU
	}
	events := float64(b.N * roundEvents)
	b.ReportMetric(events/anchorTime.Seconds(), "anchor-events/s")
	b.ReportMetric(events/ingestTime.Seconds(), "ingest-events/s")
	b.ReportMetric(anchorTime.Seconds()/ingestTime.Seconds(), "ratio")
	// CPU time of the whole process (server, client and nats-server) per event: on a shared,
	// loaded machine it moves far less than wall-clock rates do.
	if anchorCPU > 0 {
		b.ReportMetric(float64(anchorCPU.Microseconds())/events, "anchor-cpu-µs/event")
		b.ReportMetric(float64(ingestCPU.Microseconds())/events, "ingest-cpu-µs/event")
	}
}

// BenchmarkVersusAnchorSingle: single-event JSON requests from 32 clients against the anchor.
func BenchmarkVersusAnchorSingle(b *testing.B) { benchVersusAnchor(b, "application/json", 1, 32) }

// BenchmarkVersusAnchorNDJSON100: NDJSON bodies of 100 from 8 clients against the anchor.
func BenchmarkVersusAnchorNDJSON100(b *testing.B) {
	benchVersusAnchor(b, "application/x-ndjson", 100, 8)
}

// BenchmarkVersusAnchorSingleTraced is BenchmarkVersusAnchorSingle with every request traced.
func BenchmarkVersusAnchorSingleTraced(b *testing.B) {
	benchVersusAnchorTraced(b, sampledDropped(b), "application/json", 1, 32)
}

// BenchmarkVersusAnchorNDJSON100Traced is BenchmarkVersusAnchorNDJSON100 with every request
// traced: one producer span per body and a traceparent header on each of its 100 messages.
func BenchmarkVersusAnchorNDJSON100Traced(b *testing.B) {
	benchVersusAnchorTraced(b, sampledDropped(b), "application/x-ndjson", 100, 8)
}

// BenchmarkDecodeNDJSON100 is the parser alone, to tell its share of the request cost.
func BenchmarkDecodeNDJSON100(b *testing.B) {
	d, err := newDecoder(testFeatures, "FP32")
	if err != nil {
		b.Fatal(err)
	}
	benchDecode(b, d, benchEvent)
}

// benchDecode parses NDJSON bodies of 100 events that event writes.
func benchDecode(b *testing.B, d *decoder, event func([]byte, int64) []byte) {
	var body []byte
	for i := range 100 {
		body = event(body, int64(i))
		body = append(body, '\n')
	}
	var bt batch
	seen := make([]bool, len(d.features))
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		bt.reset()
		if err := d.decodeNDJSON(body, &bt, seen); err != nil {
			b.Fatal(err)
		}
	}
	reportEventsPerSecond(b, int64(b.N)*100)
}
