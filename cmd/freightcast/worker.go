package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"github.com/freightcast/freightcast/internal/metrics"
	"github.com/freightcast/freightcast/internal/model"
	"github.com/freightcast/freightcast/internal/oipclient"
	"github.com/freightcast/freightcast/internal/oipgrpc"
	"github.com/freightcast/freightcast/internal/pipelineconfig"
	"github.com/freightcast/freightcast/internal/queue"
	"github.com/freightcast/freightcast/internal/worker"
)

// workerPool runs the queue consumers of an inference pool pod (`freightcast infer --worker`):
// a fixed number of workers on the pod's own NATS connection.
type workerPool struct {
	pool *worker.Pool
	nc   *nats.Conn
	once sync.Once
	log  *slog.Logger
}

// startWorkerPool connects to the pipeline's NATS and starts n workers on the loaded model, or,
// when remote is set, on the model another server runs.
func startWorkerPool(cfg pipelineconfig.Config, rt model.Runtime, remote worker.RemoteModel, n int, reg prometheus.Registerer, log *slog.Logger, tp trace.TracerProvider) (*workerPool, error) {
	if remote != nil {
		rt = nil
	}
	var meta *model.Metadata
	if remote != nil {
		meta = remote.Metadata()
	} else {
		meta = rt.Metadata()
	}
	inputs, err := model.ResolveInputs(cfg.Model.Features, featureInputs(cfg.Model.Inputs), meta)
	if err != nil {
		return nil, fmt.Errorf("pipeline %s: %w", cfg.Name, err)
	}
	m, err := metrics.NewWorker(reg)
	if err != nil {
		return nil, err
	}
	log = log.With("pipeline", cfg.Name, "stream", cfg.Queue.Stream)
	natsOpts, err := queue.PipelineOptions(cfg.Queue.Topology, cfg.NATSCredentials)
	if err != nil {
		return nil, err
	}
	nc, err := nats.Connect(cfg.NATSURL, append(natsOpts,
		nats.Name("freightcast-worker/"+cfg.Namespace+"/"+cfg.Name),
		// Start without NATS and heal when it returns: the consumer resumes by itself.
		nats.RetryOnFailedConnect(true),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(time.Second),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) { log.Warn("NATS disconnected", "error", err) }),
		nats.ReconnectHandler(func(nc *nats.Conn) { log.Info("NATS reconnected", "url", nc.ConnectedUrlRedacted()) }),
	)...)
	if err != nil {
		return nil, fmt.Errorf("connecting to NATS at %s: %w", cfg.NATSURL, err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, err
	}
	pool, err := worker.NewPool(context.Background(), worker.PoolConfig{
		New: func(slot int) (*worker.Worker, error) {
			return worker.New(worker.Config{JetStream: js, Topology: cfg.Queue.Topology, Model: rt, Remote: remote, Inputs: inputs,
				ModelName: cfg.Model.Name, ModelVersion: cfg.Model.Version, BatchSize: cfg.Inference.BatchSize,
				MaxDeliver: cfg.Queue.MaxDeliver, RecordInputs: cfg.Output.RecordInputs, Metrics: m, PipelineName: cfg.Name,
				Logger: log.With("worker", slot), TracerProvider: tp})
		},
		// Run only fails before it consumes (no stream or consumer yet): retry until stopped.
		RetryAfter: 2 * time.Second,
		OnError: func(slot int, err error) {
			log.Warn("worker cannot consume yet; retrying", "worker", slot, "error", err)
		},
	})
	if err != nil {
		nc.Close()
		return nil, err
	}
	p := &workerPool{pool: pool, nc: nc, log: log}
	if err := pool.Resize(n); err != nil {
		p.stop()
		return nil, err
	}
	log.Info("consuming", "workers", n, "batchSize", cfg.Inference.BatchSize, "nats", cfg.NATSURL)
	return p, nil
}

// stop stops pulling, lets every worker finish and acknowledge its batch, then closes NATS.
func (p *workerPool) stop() {
	p.once.Do(func() {
		p.pool.Stop()
		p.nc.Close()
		p.log.Info("workers stopped")
	})
}

// dialRemote reaches the remote model the pipeline config names, trying again until it answers
// or ctx ends: the pool pod turns ready only once its model did.
func dialRemote(ctx context.Context, m pipelineconfig.Model, log *slog.Logger) (worker.RemoteModel, error) {
	r := m.Remote
	dial := func() (worker.RemoteModel, error) {
		return oipclient.Dial(ctx, oipclient.Config{BaseURL: r.URL, Model: m.Name, TokenFile: r.TokenFile, TrustFiles: r.TrustFiles})
	}
	switch r.Protocol {
	case pipelineconfig.ProtocolREST:
	case pipelineconfig.ProtocolGRPC:
		dial = func() (worker.RemoteModel, error) {
			return oipgrpc.DialRemote(ctx, oipgrpc.RemoteConfig{URL: r.URL, Model: m.Name, TokenFile: r.TokenFile, TrustFiles: r.TrustFiles})
		}
	default:
		return nil, fmt.Errorf("model %s is served over %q, neither REST nor GRPC", m.Name, r.Protocol)
	}
	for wait := 100 * time.Millisecond; ; wait = min(2*wait, 5*time.Second) {
		c, err := dial()
		if err == nil {
			log.Info("scoring through the remote model", "url", r.URL, "inputs", c.Metadata().Inputs, "outputs", c.Metadata().Outputs)
			return c, nil
		}
		log.Warn("the remote model does not answer yet; trying again", "url", r.URL, "error", err, "in", wait.String())
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(wait):
		}
	}
}

// probeRuntime stands for a remote model in a pool pod's probe server, which needs its metadata
// to turn ready and, serving probes only (oip.Config.ProbesOnly), never runs a model.
type probeRuntime struct{ worker.RemoteModel }

var errProbesOnly = errors.New("an inference pool pod serves only its probes and /metrics: it runs no model for the API")

func (probeRuntime) Eval(_, _ []*model.Tensor) error   { return errProbesOnly }
func (probeRuntime) Run(_ int, _, _ [][]float32) error { return errProbesOnly }
