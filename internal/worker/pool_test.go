package worker

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/freightcast/freightcast/internal/metrics"
	"github.com/freightcast/freightcast/internal/queue"
	"github.com/freightcast/freightcast/internal/testing/natstest"
	"github.com/freightcast/freightcast/internal/testing/testenv"
)

// newPool builds a pool whose workers share the harness's connection and one set of metrics.
func (h *harness) newPool(t *testing.T, retry time.Duration, onError func(int, error)) (*Pool, *metrics.Worker) {
	t.Helper()
	m, err := metrics.NewWorker(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	p, err := NewPool(context.Background(), PoolConfig{RetryAfter: retry, OnError: onError,
		New: func(int) (*Worker, error) {
			return New(Config{JetStream: h.js, Topology: h.spec.Topology, Model: h.model, ModelName: "freight-delay-risk",
				ModelVersion: "1", BatchSize: 32, MaxDeliver: h.spec.MaxDeliver, Metrics: m})
		}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Stop)
	return p, m
}

// TestPoolResizesWithoutLosingOrRepeating grows the pool, shrinks it in the middle of a backlog
// and stops it: the workers it stops drain, so every event is predicted exactly once.
func TestPoolResizesWithoutLosingOrRepeating(t *testing.T) {
	h := newHarness(t, 10*time.Minute)
	all := ids(3000)
	h.publish(all...)
	p, m := h.newPool(t, 0, func(slot int, err error) { t.Errorf("worker %d: %v", slot, err) })
	if err := p.Resize(4); err != nil {
		t.Fatal(err)
	}
	if got := p.Size(); got != 4 {
		t.Fatalf("size %d after Resize(4)", got)
	}
	testenv.Eventually(t, time.Minute, "500 events predicted by four workers", func() error {
		if got := testutil.ToFloat64(m.EventsPredicted); got < 500 {
			return fmt.Errorf("%v predicted", got)
		}
		return nil
	})
	if err := p.Resize(1); err != nil {
		t.Fatal(err)
	}
	if got := p.Size(); got != 1 {
		t.Fatalf("size %d after Resize(1)", got)
	}
	h.waitPredicted(len(all), time.Minute)
	p.Stop()
	if err := p.Resize(1); err == nil {
		t.Error("a stopped pool grew again")
	}
	h.checkExactlyOnce(all)
	if got := testutil.ToFloat64(m.EventsPredicted); got != float64(len(all)) {
		t.Errorf("the workers report %v events predicted, want %d", got, len(all))
	}
}

// TestPoolRetriesUntilTheConsumerExists starts workers before the queue is provisioned, as an
// inference pod may start before the operator has provisioned its pipeline: they keep trying,
// and consume once the consumer exists.
func TestPoolRetriesUntilTheConsumerExists(t *testing.T) {
	srv := natstest.Start(t)
	_, js := natstest.Connect(t, srv.URL())
	h := &harness{t: t, srv: srv, js: js, model: testenv.FreightModel(t), spec: queue.Spec{
		Topology: queue.TopologyFor("test", "late"),
		Limits: queue.Limits{MaxMessages: 1000, MaxBytes: 1 << 20, MaxAge: time.Hour, DuplicateWindow: time.Minute,
			AckWait: 30 * time.Second, MaxDeliver: 3, MaxAckPending: 1000, PredictionRetention: time.Hour},
	}}
	var mu sync.Mutex
	failures := map[int]int{}
	p, _ := h.newPool(t, 20*time.Millisecond, func(slot int, _ error) {
		mu.Lock()
		failures[slot]++
		mu.Unlock()
	})
	if err := p.Resize(2); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 30*time.Second, "both workers fail twice for want of a consumer", func() error {
		mu.Lock()
		defer mu.Unlock()
		if failures[0] < 2 || failures[1] < 2 {
			return fmt.Errorf("failures per slot: %v", failures)
		}
		return nil
	})
	if _, err := queue.Provision(context.Background(), js, h.spec); err != nil {
		t.Fatal(err)
	}
	all := ids(200)
	h.publish(all...)
	h.waitPredicted(len(all), 30*time.Second)
	p.Stop()
	h.checkExactlyOnce(all)
}

// TestPoolWithoutRetryRunsEachWorkerOnce is local mode's pool: a worker whose Run fails reports
// it and its slot stays stopped, so Wait returns without a Stop.
func TestPoolWithoutRetryRunsEachWorkerOnce(t *testing.T) {
	srv := natstest.Start(t)
	_, js := natstest.Connect(t, srv.URL())
	h := &harness{t: t, srv: srv, js: js, model: testenv.FreightModel(t), spec: queue.Spec{
		Topology: queue.TopologyFor("test", "none"), Limits: queue.Limits{MaxDeliver: 3}}}
	var mu sync.Mutex
	failures := map[int]int{}
	p, _ := h.newPool(t, 0, func(slot int, _ error) {
		mu.Lock()
		failures[slot]++
		mu.Unlock()
	})
	if err := p.Resize(3); err != nil {
		t.Fatal(err)
	}
	p.Wait()
	mu.Lock()
	defer mu.Unlock()
	if diff := cmp.Diff(map[int]int{0: 1, 1: 1, 2: 1}, failures); diff != "" {
		t.Errorf("failures per slot (-want +got):\n%s", diff)
	}
}
