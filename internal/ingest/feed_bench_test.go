package ingest

import (
	"bufio"
	"bytes"
	"context"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/freightcast/freightcast/internal/event"
)

// BenchmarkFeed measures the push feed: b.N predictions written to the bucket's stream as a
// worker writes them, delivered over HTTP as server-sent events to every reader. It reports
// predictions/s (each delivered to every reader), deliveries/s, and the p50/p99 from a
// prediction's predictedAt (stamped just before it is written) to its arrival at a reader.
// Written as fast as possible, the latency is mostly the backlog of the burst; the paced runs
// write at a fixed rate below the feed's capacity, so their latency is the feed's own. The
// anchor, readers=1-anchor, is an ordered consumer reading the same stream directly over NATS,
// without the HTTP feed:
//
//	go test -run=NONE -bench=Feed -benchtime=20000x ./internal/ingest
func BenchmarkFeed(b *testing.B) {
	for _, readers := range []int{1, 100} {
		b.Run("readers="+strconv.Itoa(readers), func(b *testing.B) { benchFeed(b, readers, false, 0) })
	}
	b.Run("readers=1-anchor", func(b *testing.B) { benchFeed(b, 1, true, 0) })
	b.Run("readers=1-paced-1000hz", func(b *testing.B) { benchFeed(b, 1, false, time.Millisecond) })
	b.Run("readers=1-anchor-paced-1000hz", func(b *testing.B) { benchFeed(b, 1, true, time.Millisecond) })
	b.Run("readers=100-paced-100hz", func(b *testing.B) { benchFeed(b, 100, false, 10*time.Millisecond) })
}

// benchFeed runs one case; every is the pause between two writes (0: none).
func benchFeed(b *testing.B, readers int, anchor bool, every time.Duration) {
	spec := testSpec(1 << 40)
	spec.MaxBytes = 4 << 30
	e := newEnv(b, spec, Config{FeedReaders: readers, FeedMaxLag: 1 << 30})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	latencies := make([][]time.Duration, readers)
	var ready, done sync.WaitGroup
	for r := range readers {
		ready.Add(1)
		done.Add(1)
		read := readFeed
		if anchor {
			read = readStream
		}
		go func() {
			defer done.Done()
			latencies[r] = read(ctx, b, e, b.N, &ready)
		}()
	}
	ready.Wait()
	b.ResetTimer()
	start := time.Now()
	writePredictions(b, e, b.N, every)
	done.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	var all []time.Duration
	for _, l := range latencies {
		all = append(all, l...)
	}
	if len(all) != b.N*readers {
		b.Fatalf("%d deliveries, want %d", len(all), b.N*readers)
	}
	slices.Sort(all)
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "predictions/s")
	b.ReportMetric(float64(len(all))/elapsed.Seconds(), "deliveries/s")
	b.ReportMetric(float64(all[len(all)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(all[len(all)*99/100].Microseconds())/1000, "p99-ms")
}

// writePredictions writes n records as the worker does: async publishes to the key subjects,
// each stamped with the time it is written.
func writePredictions(b *testing.B, e *env, n int, every time.Duration) {
	js, err := jetstream.New(e.nc, jetstream.WithPublishAsyncMaxPending(4096))
	if err != nil {
		b.Fatal(err)
	}
	var buf []byte
	base := benchSeq.Add(int64(n)) - int64(n)
	var tick <-chan time.Time
	if every > 0 {
		t := time.NewTicker(every)
		defer t.Stop()
		tick = t.C
	}
	for i := range n {
		if tick != nil {
			<-tick
		}
		id := "feed-" + strconv.FormatInt(base+int64(i), 10)
		p := event.Prediction{ID: id, Model: "delay", ModelVersion: "1", Outputs: map[string][]event.Value{"delay_risk": event.Numbers(0.5)},
			ReceivedAt: time.Now(), PredictedAt: time.Now()}
		if buf, err = event.AppendPrediction(buf[:0], &p); err != nil {
			b.Fatal(err)
		}
		if _, err := js.PublishMsgAsync(&nats.Msg{Subject: e.spec.PredictionKeySubject(id), Data: bytes.Clone(buf)}); err != nil {
			b.Fatal(err)
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(time.Minute):
		b.Fatal("predictions not acknowledged within a minute")
	}
}

var predictedAtKey = []byte(`"predictedAt":"`)

// latency is the time from the record's predictedAt to now.
func latency(b *testing.B, data []byte) time.Duration {
	now := time.Now()
	i := bytes.Index(data, predictedAtKey)
	if i < 0 {
		b.Fatalf("no predictedAt in %q", data)
	}
	rest := data[i+len(predictedAtKey):]
	t, err := time.Parse(time.RFC3339Nano, string(rest[:bytes.IndexByte(rest, '"')]))
	if err != nil {
		b.Fatal(err)
	}
	return now.Sub(t)
}

func readFeed(ctx context.Context, b *testing.B, e *env, n int, ready *sync.WaitGroup) []time.Duration {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, e.http.URL+"/v1/predictions:stream", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		b.Error(err)
		ready.Done()
		return nil
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Scan() // the opening comment: the consumer exists
	ready.Done()
	out := make([]time.Duration, 0, n)
	for len(out) < n && sc.Scan() {
		if line := sc.Bytes(); bytes.HasPrefix(line, []byte("data: ")) {
			out = append(out, latency(b, line))
		}
	}
	return out
}

func readStream(ctx context.Context, b *testing.B, e *env, n int, ready *sync.WaitGroup) []time.Duration {
	cons, err := e.js.OrderedConsumer(ctx, e.spec.BucketStream(), jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverNewPolicy})
	if err != nil {
		b.Error(err)
		ready.Done()
		return nil
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(feedBuffer))
	if err != nil {
		b.Error(err)
		ready.Done()
		return nil
	}
	defer it.Stop()
	ready.Done()
	out := make([]time.Duration, 0, n)
	for len(out) < n {
		m, err := it.Next()
		if err != nil {
			b.Error(err)
			return out
		}
		out = append(out, latency(b, m.Data()))
	}
	return out
}
