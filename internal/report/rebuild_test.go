package report

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/freightcast/freightcast/internal/event"
	"github.com/freightcast/freightcast/internal/queue"
	"github.com/freightcast/freightcast/internal/testing/natstest"
	"github.com/freightcast/freightcast/internal/testing/pipelinetest"
)

// rebuildEnv names the records of TestRebuildFromTheStream; unset, the test is skipped (it writes
// gigabytes and runs for minutes: docs/benchmarks.md).
const rebuildEnv = "FREIGHTCAST_REPORT_REBUILD_RECORDS"

// rebuildTail is how many records come after the snapshot of the second start.
const rebuildTail = 100_000

// TestRebuildFromTheStream measures the reporting role's rebuild on a real nats-server with file
// storage: N predictions (1,000 lanes, 3 carriers, 90 days of predictedAt) in the predictions
// bucket, a cold start without a snapshot that replays N−rebuildTail of them, a snapshot there,
// then rebuildTail more and a start that restores the snapshot and replays only those. It logs
// the times; it fails only if a record is lost or counted twice.
func TestRebuildFromTheStream(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv(rebuildEnv))
	if n <= rebuildTail {
		t.Skipf("set %s to more than %d records to measure a rebuild", rebuildEnv, rebuildTail)
	}
	srv := natstest.Start(t, natstest.WithMaxStore(48<<30))
	nc, err := nats.Connect(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	spec := pipelinetest.Spec("freight", "rebuild", 1)
	spec.Reporting = true
	spec.MaxBytes = 8 << 30
	spec.PredictionRetention = 24 * time.Hour
	if _, err := queue.Provision(context.Background(), js, spec); err != nil {
		t.Fatal(err)
	}
	head := n - rebuildTail
	began := time.Now()
	publishGenerated(t, js, spec, 0, head, n)
	t.Logf("generated and published %d records in %s", head, time.Since(began).Round(time.Millisecond))

	// Snapshots as a running role writes them, less often: every 100,000 records (the default)
	// would write a state of millions of buckets dozens of times during the replay; never would
	// leave millions of records unacknowledged, which the server re-encodes at every flush.
	opts := Options{SnapshotRecords: 500_000, SnapshotInterval: 2 * time.Minute, Batch: 1000}
	var snapshots []string
	opts.Hooks.Snapshot = func(bytes int, seq uint64) {
		snapshots = append(snapshots, fmt.Sprintf("%d@%d", bytes, seq))
	}
	cfg := testReporting()
	start := func() (*Service, func()) {
		svc, err := NewService(js, spec, cfg, opts)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- svc.Run(ctx) }()
		return svc, func() {
			cancel()
			if err := <-done; err != nil {
				t.Fatalf("Run: %v", err)
			}
		}
	}
	wait := func(svc *Service, seq uint64) (ready time.Duration) {
		began := time.Now()
		next := uint64(1_000_000)
		for {
			var last uint64
			svc.Read(func(s *State) { last = s.LastSeq })
			if ready == 0 && svc.Ready() {
				ready = time.Since(began)
			}
			if last >= seq {
				return ready
			}
			if last >= next {
				t.Logf("  applied %d records after %s", last, time.Since(began).Round(time.Second))
				next = last/1_000_000*1_000_000 + 1_000_000
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	began = time.Now()
	svc, stop := start()
	wait(svc, uint64(head))
	replay := time.Since(began)
	t.Logf("cold start without a snapshot: %d records replayed in %s, %.0f records/s", head, replay.Round(time.Millisecond), float64(head)/replay.Seconds())
	stop()
	t.Logf("snapshots written during the replay (bytes@sequence): %v", snapshots)
	var mem runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&mem)
	began = time.Now()
	if err := svc.Snapshot(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Logf("snapshot of sequence %d: %d bytes written in %s; heap in use %d MiB", head, svc.snapshotBytes.Load(), time.Since(began).Round(time.Millisecond), mem.HeapInuse>>20)

	publishGenerated(t, js, spec, head, n, n)
	began = time.Now()
	svc2, stop2 := start()
	ready := wait(svc2, uint64(n))
	restart := time.Since(began)
	stop2()
	t.Logf("start from that snapshot: ready (snapshot read and restored) after %s, the %d records after it applied after %s",
		ready.Round(time.Millisecond), rebuildTail, restart.Round(time.Millisecond))
	svc2.Read(func(s *State) {
		if s.Counters.Applied != uint64(n) || s.Counters.Malformed != 0 {
			t.Fatalf("counters after the restart %+v, want %d applied", s.Counters, n)
		}
	})
}

// publishGenerated publishes the records [from, to) of n as the inference workers write them to
// the predictions bucket. Record i is predicted at 90 days × i/n before t0 on one of 1,000 lanes.
func publishGenerated(t *testing.T, js jetstream.JetStream, spec queue.Spec, from, to, n int) {
	rng := rand.New(rand.NewPCG(uint64(from), 19))
	span := 90 * 24 * time.Hour
	clients := []string{"acme", "globex"}
	carriers := []string{"maersk", "msc", "cma"}
	for i := from; i < to; i++ {
		at := t0.Add(-span + time.Duration(float64(span)*float64(i)/float64(n)))
		id := fmt.Sprintf("e%09d", i)
		lane := rng.IntN(1000)
		shipment := fmt.Sprintf(`{"origin":"P%02d","destination":"Q%02d","carrier":%q,"weightKg":%d}`, lane/25, lane%25, carriers[rng.IntN(3)], 100+rng.IntN(20000))
		data, err := event.EncodePrediction(event.Prediction{ID: id, Model: "delay", ModelVersion: "1",
			Outputs:  map[string][]event.Value{"delay_risk": event.Numbers(rng.Float64())},
			Shipment: []byte(shipment), ReceivedAt: at, PredictedAt: at})
		if err != nil {
			t.Fatal(err)
		}
		m := nats.NewMsg(spec.PredictionKeySubject(id))
		m.Data = data
		m.Header.Set(queue.HeaderClient, clients[i%2])
		if _, err := js.PublishMsgAsync(m); err != nil {
			t.Fatal(err)
		}
		if (i+1)%2000 == 0 || i == to-1 {
			select {
			case <-js.PublishAsyncComplete():
			case <-time.After(time.Minute):
				t.Fatal("publishing timed out")
			}
		}
		if (i+1)%1_000_000 == 0 {
			t.Logf("  published %d records", i+1)
		}
	}
}
