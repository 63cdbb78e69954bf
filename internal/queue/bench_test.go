package queue_test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/freightcast/freightcast/internal/queue"
	"github.com/freightcast/freightcast/internal/testing/natstest"
	"github.com/freightcast/freightcast/internal/testing/pipelinetest"
)

// benchPipeline provisions a pipeline with replicas on c and starts its ingestion and, when
// workers > 0, its workers.
func benchPipeline(b *testing.B, c *natstest.Cluster, name string, replicas, workers int) (*pipelinetest.Pipeline, jetstream.JetStream) {
	b.Helper()
	spec := pipelinetest.Spec("bench", name, replicas)
	spec.MaxBytes = 64 << 20
	spec.MaxMessages = 1_000_000
	_, js := natstest.Connect(b, c.URL())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := queue.Provision(ctx, js, spec); err != nil {
		b.Fatal(err)
	}
	dial := func() *nats.Conn { return pipelinetest.Dial(b, c.URL(), spec.Topology, queue.Credentials{}) }
	return pipelinetest.Start(b, spec, dial(), dial, workers), js
}

// dropPipeline deletes a finished round's streams, giving their reservation back.
func dropPipeline(b *testing.B, c *natstest.Cluster, spec queue.Spec) {
	b.Helper()
	_, js := natstest.Connect(b, c.URL())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := queue.Delete(ctx, js, spec.Topology, true); err != nil {
		b.Fatal(err)
	}
}

// sendAll posts events [from, to) as NDJSON bodies of perBody from clients goroutines, each body
// retried until accepted, and returns every attempt.
func sendAll(ctx context.Context, b *testing.B, url string, from, to, perBody, clients int) []pipelinetest.Outcome {
	var next atomic.Int64
	next.Store(int64(from))
	var mu sync.Mutex
	var all []pipelinetest.Outcome
	var wg sync.WaitGroup
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				start := int(next.Add(int64(perBody))) - perBody
				if start >= to || ctx.Err() != nil {
					return
				}
				out := pipelinetest.Send(ctx, b, url, start, min(start+perBody, to))
				mu.Lock()
				all = append(all, out...)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return all
}

// waitPredicted waits until the bucket holds n values and returns when.
func waitPredicted(b *testing.B, js jetstream.JetStream, bucket string, n int) time.Time {
	kv, err := js.KeyValue(context.Background(), bucket)
	if err != nil {
		b.Fatal(err)
	}
	natstest.WaitValues(b, kv, n, 5*time.Minute)
	return time.Now()
}

// BenchmarkReplication measures what three replicas cost: NDJSON ingestion alone, and events in
// to predictions stored, with R1 and R3 streams on the same 3-server in-process cluster,
// alternating R1 and R3 rounds so that both see the same machine.
//
//	go test -run '^$' -bench Replication -benchtime 1x ./internal/queue/
func BenchmarkReplication(b *testing.B) {
	const events, perBody, clients, rounds = 20_000, 100, 8, 3
	c := natstest.StartCluster(b, 3)
	type result struct{ ingest, e2e []float64 }
	results := map[int]*result{1: {}, 3: {}}
	for i := range b.N * rounds {
		for _, r := range []int{1, 3} {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			// Ingestion alone: no worker.
			p, _ := benchPipeline(b, c, fmt.Sprintf("in-r%d-%d", r, i), r, 0)
			start := time.Now()
			sendAll(ctx, b, p.URL, 0, events, perBody, clients)
			results[r].ingest = append(results[r].ingest, events/time.Since(start).Seconds())
			p.Stop()
			dropPipeline(b, c, p.Spec)
			// Events in to predictions stored, two workers.
			p, js := benchPipeline(b, c, fmt.Sprintf("e2e-r%d-%d", r, i), r, 2)
			start = time.Now()
			sendAll(ctx, b, p.URL, 0, events, perBody, clients)
			done := waitPredicted(b, js, p.Spec.Bucket, events)
			results[r].e2e = append(results[r].e2e, events/done.Sub(start).Seconds())
			p.Stop()
			dropPipeline(b, c, p.Spec)
			cancel()
		}
	}
	median := func(xs []float64) float64 {
		s := slices.Clone(xs)
		slices.Sort(s)
		return s[len(s)/2]
	}
	for _, r := range []int{1, 3} {
		b.ReportMetric(median(results[r].ingest), fmt.Sprintf("R%d-ingest-events/s", r))
		b.ReportMetric(median(results[r].e2e), fmt.Sprintf("R%d-e2e-events/s", r))
		b.Logf("R%d: ingestion %v events/s, end to end %v events/s", r, results[r].ingest, results[r].e2e)
	}
	b.ReportMetric(median(results[3].ingest)/median(results[1].ingest), "R3/R1-ingest")
	b.ReportMetric(median(results[3].e2e)/median(results[1].e2e), "R3/R1-e2e")
}

// BenchmarkLeaderFailover runs steady traffic into an R3 pipeline, crashes the stream leader's
// server after a few seconds, and measures what clients see: the longest run of 503s (first
// refused request sent to last refusal answered), and the time from the crash until ingestion
// and the workers each run at 90 % of their rate before it again, in 250 ms buckets.
//
//	go test -run '^$' -bench LeaderFailover -benchtime 1x ./internal/queue/
func BenchmarkLeaderFailover(b *testing.B) {
	const perBody, clients, before, after = 100, 4, 6 * time.Second, 20 * time.Second
	const bucket = 250 * time.Millisecond
	for i := range b.N {
		c := natstest.StartCluster(b, 3)
		p, js := benchPipeline(b, c, fmt.Sprint("failover", i), 3, 2)
		ctx, cancel := context.WithTimeout(context.Background(), before+after+time.Minute)
		stopAt := time.Now().Add(before + after)
		// Predictions stored, sampled every bucket.
		var samples []struct {
			at time.Time
			n  uint64
		}
		kv, err := js.KeyValue(ctx, p.Spec.Bucket)
		if err != nil {
			b.Fatal(err)
		}
		sampled := make(chan struct{})
		go func() {
			defer close(sampled)
			for time.Now().Before(stopAt) {
				c, cancel := context.WithTimeout(ctx, bucket)
				if st, err := kv.Status(c); err == nil {
					samples = append(samples, struct {
						at time.Time
						n  uint64
					}{time.Now(), st.Values()})
				}
				cancel()
				time.Sleep(bucket)
			}
		}()
		var mu sync.Mutex
		var outcomes []pipelinetest.Outcome
		var next atomic.Int64
		var wg sync.WaitGroup
		for range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for time.Now().Before(stopAt) {
					start := int(next.Add(perBody)) - perBody
					out := pipelinetest.Send(ctx, b, p.URL, start, start+perBody)
					mu.Lock()
					outcomes = append(outcomes, out...)
					mu.Unlock()
				}
			}()
		}
		time.Sleep(before)
		killed := time.Now()
		c.Kill(b, c.Index(c.WaitStreamLeader(b, "", p.Spec.Stream, 10*time.Second)))
		wg.Wait()
		<-sampled
		cancel()

		// The longest run of refusals: consecutive refused outcomes in time order, across clients.
		slices.SortFunc(outcomes, func(x, y pipelinetest.Outcome) int { return x.Start.Compare(y.Start) })
		var longest time.Duration
		var runStart, runEnd time.Time
		var refusals int
		for _, o := range outcomes {
			if o.Status == http.StatusAccepted {
				runStart = time.Time{}
				continue
			}
			refusals++
			if runStart.IsZero() {
				runStart = o.Start
			}
			runEnd = o.End
			longest = max(longest, runEnd.Sub(runStart))
		}
		// Rates per bucket: accepted events by when their 202 came, predictions by the samples.
		accepted := map[int]float64{}
		for _, o := range outcomes {
			if o.Status == http.StatusAccepted {
				accepted[int(o.End.Sub(killed)/bucket)] += float64(o.Accepted + o.Duplicates)
			}
		}
		predicted := map[int]float64{}
		for j := 1; j < len(samples); j++ {
			predicted[int(samples[j].at.Sub(killed)/bucket)] += float64(samples[j].n - samples[j-1].n)
		}
		recovery := func(rates map[int]float64) time.Duration {
			// The rate before: the buckets of the last 4 s before the crash, skipping the first 2 s.
			var sum float64
			n := int((before - 2*time.Second) / bucket)
			for k := -n; k < 0; k++ {
				sum += rates[k]
			}
			full := 0.9 * sum / float64(n)
			// Recovered at the first bucket after the crash from which two in a row reach it.
			for k := 0; k < int(after/bucket)-1; k++ {
				if rates[k] >= full && rates[k+1] >= full {
					return time.Duration(k) * bucket
				}
			}
			return -1
		}
		ingestBack, predictBack := recovery(accepted), recovery(predicted)
		b.ReportMetric(longest.Seconds(), "longest-503-run-s")
		b.ReportMetric(float64(refusals), "refusals")
		b.ReportMetric(ingestBack.Seconds(), "ingest-recovered-s")
		b.ReportMetric(predictBack.Seconds(), "predict-recovered-s")
		b.Logf("crash at %s: %d refusals, longest run %s; ingestion back to 90 %% after %s, predictions after %s",
			killed.Format(time.TimeOnly), refusals, longest, ingestBack, predictBack)
	}
}
