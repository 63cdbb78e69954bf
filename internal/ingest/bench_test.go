package ingest

import (
	"bytes"
	"io"
	"net/http"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/freightcast/freightcast/internal/event"
)

// The benchmarks compare ingestion with its anchor, raw asynchronous JetStream publishing of the
// same messages to the same kind of server (embedded, file store, message ids), in one run:
//
//	go test -run=NONE -bench=. -benchtime=5s ./internal/ingest
//
// Figures and analysis: docs/benchmarks-ingest.md.

// benchSpec never fills up during a benchmark.
func benchEnv(b *testing.B) *env {
	spec := testSpec(1 << 40)
	spec.MaxBytes = 16 << 30
	spec.DuplicateWindow = 2 * time.Minute
	return newEnv(b, spec, Config{MaxBodyBytes: 1 << 20})
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

// BenchmarkAnchorAsyncPublish publishes queue messages as ingestion would produce them, with no
// HTTP and no parsing: the ceiling ingestion is measured against.
func BenchmarkAnchorAsyncPublish(b *testing.B) {
	e := benchEnv(b)
	js, err := jetstream.New(e.nc, jetstream.WithPublishAsyncMaxPending(16384))
	if err != nil {
		b.Fatal(err)
	}
	received := time.Now()
	var payload []byte
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		id := "anchor-" + strconv.FormatInt(benchSeq.Add(1), 10)
		payload = event.AppendEncode(payload[:0], &event.Event{ID: id, Features: []float64{0.73, 2.5, 8450.25},
			Shipment: []byte(`{"from":"NLRTM","to":"SGSIN","carrier":"MAEU","teu":2}`), ReceivedAt: received})
		data := bytes.Clone(payload)
		if _, err := js.PublishMsgAsync(&nats.Msg{Subject: e.spec.Subject, Data: data}, jetstream.WithMsgID(id), jetstream.WithStallWait(30*time.Second)); err != nil {
			b.Fatal(err)
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(30 * time.Second):
		b.Fatal("acks did not arrive within 30s")
	}
	reportEventsPerSecond(b, int64(b.N))
	b.SetBytes(int64(len(payload)))
}

// benchPost runs clients in parallel, each POSTing bodies of perBody events.
func benchPost(b *testing.B, contentType string, perBody, clientsPerCPU int) {
	e := benchEnv(b)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}, Timeout: 30 * time.Second}
	url := e.http.URL + "/v1/events"
	b.SetParallelism(clientsPerCPU)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		var body []byte
		for pb.Next() {
			body = body[:0]
			if perBody > 1 {
				for range perBody {
					body = benchEvent(body, benchSeq.Add(1))
					body = append(body, '\n')
				}
			} else {
				body = benchEvent(body, benchSeq.Add(1))
			}
			resp, err := client.Post(url, contentType, bytes.NewReader(body))
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusAccepted {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
	})
	reportEventsPerSecond(b, int64(b.N)*int64(perBody))
}

// BenchmarkIngestSingle: one JSON event per request, 16 concurrent clients per CPU.
func BenchmarkIngestSingle(b *testing.B) { benchPost(b, "application/json", 1, 16) }

// BenchmarkIngestNDJSON100: 100 events per NDJSON request, 4 concurrent clients per CPU.
func BenchmarkIngestNDJSON100(b *testing.B) { benchPost(b, "application/x-ndjson", 100, 4) }

// BenchmarkDecodeNDJSON100 is the parser alone, to tell its share of the request cost.
func BenchmarkDecodeNDJSON100(b *testing.B) {
	d, err := newDecoder(testFeatures)
	if err != nil {
		b.Fatal(err)
	}
	var body []byte
	for i := range 100 {
		body = benchEvent(body, int64(i))
		body = append(body, '\n')
	}
	var bt batch
	seen := make([]bool, len(testFeatures))
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		bt.reset()
		if err := d.decodeNDJSON(body, &bt, seen); err != nil {
			b.Fatal(err)
		}
	}
	reportEventsPerSecond(b, int64(b.N)*100)
}
