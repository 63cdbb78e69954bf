// Package spec translates the freightcast.io API into the data plane's configuration: the
// pipeline config a pipeline's pods read, its queue's topology and limits, the autoscaling policy
// its inference pool is sized with, and how a model's servers serve it. The operator builds its
// children from it and local mode (`freightcast run`) its in-process components, so both read a
// spec the same way. Every function applies the API's defaults itself (objects built in Go never
// went through an API server), and nothing here imports controller-runtime.
package spec

import (
	freightcastv1alpha1 "github.com/freightcast/freightcast/api/v1alpha1"
	"github.com/freightcast/freightcast/internal/pipelineconfig"
	"github.com/freightcast/freightcast/internal/queue"
)

// TokensFile is where the data-plane containers find the accepted bearer tokens: the operator
// mounts spec.auth's Secret key there, and the pipeline config points ingestion at it.
const TokensFile = "/etc/freightcast/auth/tokens"

// Queue is pipeline p's JetStream topology and limits.
func Queue(p *freightcastv1alpha1.FreightPipeline) queue.Spec {
	p = defaultedPipeline(p)
	q := p.Spec.Queue
	return queue.Spec{
		Topology: queue.TopologyFor(p.Namespace, p.Name),
		Limits: queue.Limits{
			MaxMessages:     q.MaxMessages,
			MaxBytes:        q.MaxBytes.Value(),
			MaxAge:          q.MaxAge.Duration,
			DuplicateWindow: q.DuplicateWindow.Duration,
			AckWait:         q.AckWait.Duration,
			MaxDeliver:      int(q.MaxDeliver),
			// Enough unacknowledged events for every worker the pool may run to hold two batches.
			MaxAckPending:       int(p.Spec.Inference.MaxReplicas) * int(p.Spec.Inference.BatchSize) * 2,
			PredictionRetention: p.Spec.Output.PredictionRetention.Duration,
		},
	}
}

// Pipeline renders the data-plane configuration of pipeline p scoring with model on the NATS
// server at natsURL: what the operator writes into the pipeline's ConfigMap, and what local mode
// hands its in-process components. The model version is the one the model's pods serve (see
// ServedRevision), so a pipeline follows a rollback of its model.
func Pipeline(p *freightcastv1alpha1.FreightPipeline, model *freightcastv1alpha1.PredictionModel, natsURL string) pipelineconfig.Config {
	p = defaultedPipeline(p)
	cfg := pipelineconfig.Config{
		Namespace: p.Namespace,
		Name:      p.Name,
		NATSURL:   natsURL,
		Queue:     Queue(p),
		Model: pipelineconfig.Model{
			Name:     model.Name,
			Version:  servedVersion(model),
			Features: model.Spec.Features,
		},
		Ingestion: pipelineconfig.Ingestion{
			MaxBodyBytes: p.Spec.Ingestion.MaxBodyBytes.Value(),
		},
		Inference: pipelineconfig.Inference{BatchSize: int(p.Spec.Inference.BatchSize)},
	}
	if p.Spec.Ingestion.Auth != nil {
		cfg.Ingestion.TokensFile = TokensFile
	}
	if rl := p.Spec.Ingestion.RateLimit; rl != nil {
		burst := rl.Burst
		if burst == 0 {
			burst = rl.EventsPerSecond
		}
		cfg.Ingestion.RateLimit = &pipelineconfig.RateLimit{EventsPerSecond: rl.EventsPerSecond, Burst: burst}
	}
	return cfg
}

func defaultedPipeline(p *freightcastv1alpha1.FreightPipeline) *freightcastv1alpha1.FreightPipeline {
	p = p.DeepCopy()
	p.Default()
	return p
}
