package local

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/freightcast/freightcast/internal/event"
	"github.com/freightcast/freightcast/internal/queue"
	"github.com/freightcast/freightcast/internal/testing/cputime"
	"github.com/freightcast/freightcast/internal/testing/natstest"
)

// The end-to-end benchmarks run local mode as `make run` does (embedded NATS with file storage,
// ingestion over HTTP on loopback, workers, the real model) and measure what a client sees:
// events/s from the first POST to the last stored prediction, and each event's latency from
// ingestion receiving it to its prediction being stored (predictedAt − receivedAt).

const benchBatch = 100

// sendNDJSON posts events [from, to) as NDJSON bodies of benchBatch, paced to rate events/s
// when rate > 0, from clients concurrent connections.
func sendNDJSON(b *testing.B, url, prefix string, from, to, clients int, rate float64) {
	var wg sync.WaitGroup
	start := time.Now()
	bodies := (to - from + benchBatch - 1) / benchBatch
	next := make(chan int, bodies)
	for i := range bodies {
		next <- from + i*benchBatch
	}
	close(next)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients}}
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var sb strings.Builder
			for first := range next {
				if rate > 0 {
					due := start.Add(time.Duration(float64(first-from) / rate * float64(time.Second)))
					time.Sleep(time.Until(due))
				}
				sb.Reset()
				for i := first; i < min(first+benchBatch, to); i++ {
					sb.WriteString(eventJSON(fmt.Sprintf("%s-%07d", prefix, i), i))
					sb.WriteByte('\n')
				}
				resp, err := client.Post(url+"/v1/events", "application/x-ndjson", strings.NewReader(sb.String()))
				if err != nil {
					b.Error(err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusAccepted {
					b.Errorf("POST: %d", resp.StatusCode)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// collectLatencies reads n predictions from the predictions bucket's stream, in the order they
// were stored, and returns their latencies.
func collectLatencies(b *testing.B, js jetstream.JetStream, n int, since time.Time) []time.Duration {
	topo := queue.TopologyFor("local", "orders")
	cons, err := js.OrderedConsumer(context.Background(), "KV_"+topo.Bucket, jetstream.OrderedConsumerConfig{
		DeliverPolicy: jetstream.DeliverByStartTimePolicy, OptStartTime: &since})
	if err != nil {
		b.Fatal(err)
	}
	lat := make([]time.Duration, 0, n)
	for len(lat) < n {
		batch, err := cons.Fetch(min(n-len(lat), 5000), jetstream.FetchMaxWait(30*time.Second))
		if err != nil {
			b.Fatal(err)
		}
		got := 0
		for m := range batch.Messages() {
			p, err := event.DecodePrediction(m.Data())
			if err != nil {
				b.Fatal(err)
			}
			lat = append(lat, p.PredictedAt.Sub(p.ReceivedAt))
			got++
		}
		if got == 0 {
			b.Fatalf("only %d of %d predictions arrived", len(lat), n)
		}
	}
	return lat
}

func percentile(sorted []time.Duration, p float64) time.Duration {
	return sorted[min(len(sorted)-1, int(float64(len(sorted))*p))]
}

func waitPredictions(b *testing.B, kv jetstream.KeyValue, n uint64) time.Time {
	for {
		st, err := kv.Status(context.Background())
		if err == nil && st.Values() >= n {
			return time.Now()
		}
		time.Sleep(time.Millisecond)
	}
}

// BenchmarkEndToEnd measures the maximum end-to-end rate, then latency at half of it; with
// -reporting, of the pipeline with spec.reporting.
func BenchmarkEndToEnd(b *testing.B) {
	const events = 50_000
	eps := startBench(b)
	url := eps.Ingest["orders"]
	_, js := natstest.Connect(b, eps.NATS)
	kv, err := js.KeyValue(context.Background(), queue.TopologyFor("local", "orders").Bucket)
	if err != nil {
		b.Fatal(err)
	}
	var stored uint64
	var maxRate float64
	round := 0

	b.Run("max-rate", func(b *testing.B) {
		for b.Loop() {
			round++
			since, cpu := time.Now(), cputime.Process()
			sendNDJSON(b, url, fmt.Sprintf("max%d", round), 0, events, 4, 0)
			stored += events
			end := waitPredictions(b, kv, stored)
			// CPU time of the whole process (clients, ingestion, NATS, workers) per event: on
			// the shared machine it moves far less with the other load than the rate does.
			b.ReportMetric(float64((cputime.Process()-cpu).Microseconds())/events, "cpu-µs/event")
			reportCatchUp(b, eps, stored, end, cpu, events)
			rate := float64(events) / end.Sub(since).Seconds()
			maxRate = max(maxRate, rate)
			lat := collectLatencies(b, js, events, since)
			slices.Sort(lat)
			b.ReportMetric(rate, "events/s")
			b.ReportMetric(float64(percentile(lat, 0.5).Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(percentile(lat, 0.99).Microseconds())/1000, "p99-ms")
		}
	})
	b.Run("half-rate", func(b *testing.B) {
		if maxRate == 0 {
			b.Skip("no maximum rate measured")
		}
		rate := maxRate / 2
		n := int(rate * 5) // five seconds of traffic
		for b.Loop() {
			round++
			since := time.Now()
			sendNDJSON(b, url, fmt.Sprintf("half%d", round), 0, n, 4, rate)
			stored += uint64(n)
			waitPredictions(b, kv, stored)
			lat := collectLatencies(b, js, n, since)
			slices.Sort(lat)
			b.ReportMetric(rate, "offered-events/s")
			b.ReportMetric(float64(percentile(lat, 0.5).Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(percentile(lat, 0.99).Microseconds())/1000, "p99-ms")
		}
	})
}
