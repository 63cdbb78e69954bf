package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/freightcast/freightcast/internal/event"
	"github.com/freightcast/freightcast/internal/pipelineconfig"
	"github.com/freightcast/freightcast/internal/queue"
	"github.com/freightcast/freightcast/internal/testing/natstest"
	"github.com/freightcast/freightcast/internal/testing/testenv"
)

// TestInferWorkerModeConsumesThePipeline runs `freightcast infer --worker` as an inference pool pod
// does: it serves OIP and consumes the pipeline's queue, and on cancel (SIGTERM) it stops after
// acknowledging what it holds.
func TestInferWorkerModeConsumesThePipeline(t *testing.T) {
	srv := natstest.Start(t)
	cfg := pipelineconfig.Config{
		Namespace: "freight", Name: "orders", NATSURL: srv.URL(),
		Queue: queue.Spec{Topology: queue.TopologyFor("freight", "orders"), Limits: queue.Limits{
			MaxMessages: 100000, MaxBytes: 1 << 28, MaxAge: time.Hour, DuplicateWindow: time.Minute,
			AckWait: 30 * time.Second, MaxDeliver: 3, MaxAckPending: 1000, PredictionRetention: time.Hour}},
		Model:     pipelineconfig.Model{Name: "freight", Version: "1"},
		Ingestion: pipelineconfig.Ingestion{MaxBodyBytes: 1 << 20},
		Inference: pipelineconfig.Inference{BatchSize: 32},
	}
	data, err := cfg.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), pipelineconfig.FileName)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	_, js := natstest.Connect(t, srv.URL())
	ctx := context.Background()
	if _, err := queue.Provision(ctx, js, cfg.Queue); err != nil {
		t.Fatal(err)
	}
	const n = 500
	for i := range n {
		msg, _ := event.Encode(&event.Event{ID: fmt.Sprintf("e%d", i), Features: make([]float64, 12), ReceivedAt: time.Now()})
		if _, err := js.Publish(ctx, cfg.Queue.Subject, msg, jetstream.WithMsgID(fmt.Sprintf("e%d", i))); err != nil {
			t.Fatal(err)
		}
	}

	o := defaultOptions(freightFeatures)
	o.worker, o.pipelineConfig, o.workers = true, path, 2
	base, done, cancel := startInfer(t, o)
	waitReady(t, base)
	kv, err := js.KeyValue(ctx, cfg.Queue.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	natstest.WaitValues(t, kv, n, 30*time.Second)
	if code, body := postSample(t, base); code != 200 {
		t.Fatalf("the worker pod stopped serving OIP: %d %s", code, body)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("infer --worker returned %v on stop", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("infer --worker did not stop within 30s")
	}
	stream, err := js.Stream(ctx, cfg.Queue.Stream)
	if err != nil {
		t.Fatal(err)
	}
	// The workers have sent their acks when infer returns, but the server applies acks on a
	// goroutine of its own, so the work queue may still hold the last of them for a moment.
	testenv.Eventually(t, 30*time.Second, "an empty queue after the stop", func() error {
		info, err := stream.Info(ctx)
		if err != nil {
			return err
		}
		if info.State.Msgs != 0 {
			return fmt.Errorf("%d events left in the queue", info.State.Msgs)
		}
		return nil
	})
}
