package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/freightcast/freightcast/internal/event"
	"github.com/freightcast/freightcast/internal/modelcheck"
	"github.com/freightcast/freightcast/internal/pipelineconfig"
	"github.com/freightcast/freightcast/internal/queue"
	"github.com/freightcast/freightcast/internal/testing/natstest"
	"github.com/freightcast/freightcast/internal/testing/onnxtest"
	"github.com/freightcast/freightcast/internal/testing/testenv"
)

// workerQueue is a pipeline's queue on an in-process NATS server holding n events, and the
// pipeline config file a worker pod reads.
type workerQueue struct {
	cfg  pipelineconfig.Config
	path string
	js   jetstream.JetStream
}

func newWorkerQueue(t *testing.T, n int) workerQueue {
	t.Helper()
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
	for i := range n {
		msg, _ := event.Encode(&event.Event{ID: fmt.Sprintf("e%d", i), Features: make([]float64, 12), ReceivedAt: time.Now()})
		if _, err := js.Publish(ctx, cfg.Queue.Subject, msg, jetstream.WithMsgID(fmt.Sprintf("e%d", i))); err != nil {
			t.Fatal(err)
		}
	}

	return workerQueue{cfg: cfg, path: path, js: js}
}

// TestInferWorkerModeConsumesThePipeline runs `freightcast infer --worker` as an inference pool pod
// does: it consumes the pipeline's queue, its port answers the kubelet's probes and /metrics and
// nothing of the OIP API, and on cancel (SIGTERM) it stops after acknowledging what it holds.
func TestInferWorkerModeConsumesThePipeline(t *testing.T) {
	const n = 500
	q := newWorkerQueue(t, n)
	cfg, path, js, ctx := q.cfg, q.path, q.js, context.Background()
	o := defaultOptions(freightFeatures)
	o.worker, o.pipelineConfig, o.workers = true, path, 2
	base, done, cancel := startInfer(t, o)
	waitReady(t, base)
	kv, err := js.KeyValue(ctx, cfg.Queue.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	natstest.WaitValues(t, kv, n, 30*time.Second)
	checkProbesOnly(t, base)
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

// TestInferWorkerWithAModelThatCannotLoadKeepsTheQueue: a worker pod whose model cannot load
// exits with modelcheck.ExitUnloadable before it takes an event, so the pipeline's events wait in
// its queue for a model that loads, and none is dead-lettered for it.
func TestInferWorkerWithAModelThatCannotLoadKeepsTheQueue(t *testing.T) {
	const n = 50
	q := newWorkerQueue(t, n)
	ctx := context.Background()
	bad := filepath.Join(t.TempDir(), "fused.onnx")
	if err := os.WriteFile(bad, onnxtest.Refused(12), 0o600); err != nil {
		t.Fatal(err)
	}
	o := defaultOptions(freightFeatures)
	o.modelFile, o.worker, o.pipelineConfig, o.workers = bad, true, q.path, 2
	_, done, cancel := startInfer(t, o)
	defer cancel()
	select {
	case err := <-done:
		if code := exitCode(err); code != modelcheck.ExitUnloadable {
			t.Fatalf("infer --worker with a FusedGemm returned %v (exit code %d), want exit code %d", err, code, modelcheck.ExitUnloadable)
		}
		if !strings.Contains(err.Error(), "FusedGemm") {
			t.Errorf("error %q does not name the operator", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("infer --worker kept running with a model it cannot load")
	}
	stream, err := q.js.Stream(ctx, q.cfg.Queue.Stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != n {
		t.Errorf("%d events in the queue, want all %d kept", info.State.Msgs, n)
	}
	consumer, err := stream.Consumer(ctx, q.cfg.Queue.Consumer)
	if err != nil {
		t.Fatal(err)
	}
	// The server counts a consumer's pending messages as they reach it, a moment after the
	// stream stored them: wait for the count, but a delivery is a failure at once.
	testenv.Eventually(t, 10*time.Second, "the consumer's pending count", func() error {
		ci, err := consumer.Info(ctx)
		switch {
		case err != nil:
			return err
		case ci.Delivered.Consumer != 0:
			t.Fatalf("consumer delivered %d events, want none", ci.Delivered.Consumer)
		case ci.NumPending != n:
			return fmt.Errorf("%d pending, want %d", ci.NumPending, n)
		}
		return nil
	})
	out, err := q.js.Stream(ctx, q.cfg.Queue.OutputStream)
	if err != nil {
		t.Fatal(err)
	}
	oi, err := out.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// The output stream holds dead letters only, each under its event's subject.
	if oi.State.Msgs != 0 {
		t.Errorf("%d dead letters in the output stream, want none", oi.State.Msgs)
	}
}

// checkProbesOnly asks a pool pod's port for each path a client of a model-serving pod could use,
// and for what the kubelet and Prometheus use.
func checkProbesOnly(t *testing.T, base string) {
	t.Helper()
	if code, body := postSample(t, base); code != http.StatusNotFound {
		t.Errorf("POST /v2/models/freight/infer on a pool pod: %d %s, want 404: the pool serves no OIP API", code, body)
	}
	cases := map[string]int{
		"/v2/health/live":           http.StatusOK,
		"/v2/health/ready":          http.StatusOK,
		"/metrics":                  http.StatusOK,
		"/v2":                       http.StatusNotFound,
		"/v2/models":                http.StatusNotFound,
		"/v2/models/freight":        http.StatusNotFound,
		"/v2/models/freight/ready":  http.StatusNotFound,
		"/v2/models/freight/infer/": http.StatusNotFound,
	}
	for path, want := range cases {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s on a pool pod: %d, want %d", path, resp.StatusCode, want)
		}
	}
}

// TestInferWorkerScoresThroughARemoteModel runs an inference pool pod whose pipeline scores
// through another OIP runtime: `freightcast infer` serving the model with tokens is the stand-in
// for that runtime. The pool pod loads no model file, presents the token it is given, and turns
// ready once the model answered.
func TestInferWorkerScoresThroughARemoteModel(t *testing.T) {
	const n = 300
	dir := t.TempDir()
	tokens := filepath.Join(dir, "tokens")
	if err := os.WriteFile(tokens, []byte("pool-secret\nsomeone-else\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	standIn := defaultOptions(freightFeatures)
	standIn.tokensFile = tokens
	runtimeURL, _, stopRuntime := startInfer(t, standIn)
	defer stopRuntime()

	q := newWorkerQueue(t, n)
	q.cfg.Model.Features = strings.Split(freightFeatures, ",")
	q.cfg.Model.Remote = &pipelineconfig.Remote{URL: runtimeURL, Protocol: pipelineconfig.ProtocolREST, TokenFile: tokens}
	data, err := q.cfg.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(q.path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	o := defaultOptions("")
	o.modelFile, o.worker, o.pipelineConfig, o.workers = "", true, q.path, 2
	base, done, cancel := startInfer(t, o)
	waitReady(t, base)
	kv, err := q.js.KeyValue(context.Background(), q.cfg.Queue.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	natstest.WaitValues(t, kv, n, 30*time.Second)
	entry, err := kv.Get(context.Background(), "e0")
	if err != nil {
		t.Fatal(err)
	}
	if p, err := event.DecodePrediction(entry.Value()); err != nil || len(p.Outputs["delay_risk"]) != 1 {
		t.Errorf("prediction e0 = %s, %v", entry.Value(), err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("infer --worker returned %v on stop", err)
	}
}
