package scaler

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/freightcast/freightcast/internal/autoscale"
	"github.com/freightcast/freightcast/internal/queue"
	"github.com/freightcast/freightcast/internal/testing/natstest"
)

// TestSampleReadsTheQueueAndDecides runs the loop body on a real nats-server: the depth it reads
// sizes the pool, acknowledgements between two samples are measured as throughput, and a read
// that fails holds the pool rather than counting as an empty queue.
func TestSampleReadsTheQueueAndDecides(t *testing.T) {
	srv := natstest.Start(t)
	_, js := natstest.Connect(t, srv.URL())
	ctx := context.Background()
	spec := queue.Spec{Topology: queue.TopologyFor("ns", "orders"), Limits: queue.Limits{MaxMessages: 1000, MaxBytes: 1 << 20,
		MaxAge: time.Hour, DuplicateWindow: time.Minute, AckWait: 30 * time.Second, MaxDeliver: 5, MaxAckPending: 1000,
		PredictionRetention: time.Hour}}
	if _, err := queue.Provision(ctx, js, spec); err != nil {
		t.Fatal(err)
	}
	for i := range 250 {
		if _, err := js.Publish(ctx, spec.Subject, []byte(`{}`), jetstream.WithMsgID(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	s, err := New(autoscale.Policy{MinReplicas: 1, MaxReplicas: 10, TargetPerReplica: 100}, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	drained, err := New(autoscale.Policy{MinReplicas: 1, MaxReplicas: 10, TargetPerReplica: 100, DrainTarget: 5 * time.Second}, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	read := ConsumerLag(js, spec.Topology)
	// nats-server counts a consumer's pending messages as the stream signals it, after the
	// publish acknowledgement: wait until all 250 are counted (seen 233 right after).
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		lag, err := read(ctx)
		if err == nil && lag.Total() == 250 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the consumer counts %+v (err %v) of the 250 events published", lag, err)
		}
	}
	now := time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)
	drained.Sample(ctx, read, now, 1, 1)

	first := s.Sample(ctx, read, now, 1, 1)
	if first.LagErr != nil || first.Lag.Total() != 250 || first.Decision.Desired != 3 {
		t.Fatalf("first sample: lag %+v err %v, decision %+v; want 250 events and 3 replicas", first.Lag, first.LagErr, first.Decision)
	}

	// A worker takes and acknowledges 100 events; the next sample, 10 s later, sees 10 events/s.
	cons, err := js.Consumer(ctx, spec.Stream, spec.Consumer)
	if err != nil {
		t.Fatal(err)
	}
	batch, err := cons.Fetch(100, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for msg := range batch.Messages() {
		if err := msg.DoubleAck(ctx); err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n != 100 {
		t.Fatalf("fetched %d events, want 100", n)
	}
	second := drained.Sample(ctx, read, now.Add(10*time.Second), 1, 1)
	// 150 events left at 10 events/s per replica, to drain in 5 s: 3 replicas.
	if second.LagErr != nil || second.Lag.Total() != 150 || !strings.Contains(second.Decision.Reason, "at 10 events/s per replica") {
		t.Errorf("second sample: lag %+v err %v, decision %+v; want 150 events and a measured 10 events/s", second.Lag, second.LagErr, second.Decision)
	}

	failed := s.Sample(ctx, func(context.Context) (queue.Lag, error) { return queue.Lag{}, queue.ErrUnreachable }, now.Add(time.Second), 3, 3)
	if !errors.Is(failed.LagErr, queue.ErrUnreachable) || failed.Decision.Desired != 3 || failed.Decision.Direction != autoscale.None {
		t.Errorf("failed read: err %v, decision %+v; want the pool held at 3", failed.LagErr, failed.Decision)
	}
}

func TestSampleBoundsTheRead(t *testing.T) {
	s, err := New(autoscale.Policy{MinReplicas: 1, MaxReplicas: 10, TargetPerReplica: 100}, 50*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	var deadline time.Time
	s.Sample(context.Background(), func(ctx context.Context) (queue.Lag, error) {
		deadline, _ = ctx.Deadline()
		<-ctx.Done()
		return queue.Lag{}, ctx.Err()
	}, time.Now(), 1, 1)
	if deadline.IsZero() {
		t.Fatal("the read had no deadline")
	}
}
