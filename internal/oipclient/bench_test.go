package oipclient_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/freightcast/freightcast/internal/event"
	"github.com/freightcast/freightcast/internal/testing/testenv"
	"github.com/freightcast/freightcast/internal/worker"
)

// BenchmarkPipelineScoring measures a pipeline's inference pool end to end on a real
// nats-server: events queued, scored, their predictions stored once and acknowledged. InProcess
// runs the freight model in the workers (the anchor); REST and gRPC send each batch to the
// project's own OIP server on loopback, the stand-in for another runtime, over each transport.
// With -count, the modes alternate round by round. Queueing the events is not timed; events/s is
// what the pool drains.
func BenchmarkPipelineScoring(b *testing.B) {
	const perOp = 4096
	for _, mode := range []string{"InProcess", "REST", "gRPC"} {
		for _, workers := range []int{1, 4} {
			b.Run(fmt.Sprintf("%s/workers=%d", mode, workers), func(b *testing.B) {
				m := testenv.FreightModel(b)
				p := newPipeline(b, time.Minute)
				var remote worker.RemoteModel
				tune := func(c *worker.Config) { c.BatchSize = 64 }
				switch mode {
				case "InProcess":
					tune = func(c *worker.Config) { c.BatchSize, c.Remote, c.Model = 64, nil, m }
				case "REST":
					remote = transports[0].dial(b, startStandIn(b, m, "", nil), "")
				case "gRPC":
					remote = transports[1].dial(b, startStandIn(b, m, "", nil), "")
				}
				p.startWorkers(workers, remote, tune)
				ctx := context.Background()
				total := 0
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					b.StopTimer()
					for j := range perOp {
						id := fmt.Sprintf("b%d-%d", i, j)
						data, err := event.Encode(&event.Event{ID: id, Features: features(j), ReceivedAt: time.Now(), Shipment: []byte(`{}`)})
						if err != nil {
							b.Fatal(err)
						}
						if _, err := p.js.PublishAsync(p.spec.Subject, data, jetstream.WithMsgID(id)); err != nil {
							b.Fatal(err)
						}
						if j%1024 == 1023 || j == perOp-1 {
							// Within the client's limit of publishes awaiting their ack.
							select {
							case <-p.js.PublishAsyncComplete():
							case <-time.After(30 * time.Second):
								b.Fatal("events not queued within 30s")
							}
						}
					}
					total += perOp
					b.StartTimer()
					for p.predicted() < total {
						if ctx.Err() != nil {
							b.Fatal(ctx.Err())
						}
						time.Sleep(time.Millisecond)
					}
				}
				b.ReportMetric(float64(total)/b.Elapsed().Seconds(), "events/s")
			})
		}
	}
}
