package controllers

import (
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/freightcast/freightcast/internal/queue"
)

// Options are the operator-wide settings the reconcilers build children with.
type Options struct {
	// Image is the freightcast image every data-plane pod runs (the operator's own image, so
	// operator and data plane never skew).
	Image string
	// ImagePullPolicy of data-plane containers.
	ImagePullPolicy corev1.PullPolicy
	// DefaultNATSURL serves pipelines that do not name a NATS server.
	DefaultNATSURL string
	// DefaultQueueReplicas is the replicas of the streams of pipelines that do not set
	// spec.queue.replicas; 0 means 1. The chart sets it from its NATS cluster size.
	DefaultQueueReplicas int
	// NATSStore is what the operator knows of the default NATS servers' stores, which they do
	// not tell clients (max_file_store, and how many servers): with it a pipeline that does not
	// fit is refused with the numbers before anything is written, and the capacity metrics
	// count it. The zero value: unknown, the servers decide.
	NATSStore queue.StoreLimit
	// QueueDeletionTimeout is how long the deletion of a pipeline with deletionPolicy Delete
	// retries a NATS that does not answer or refuses, before it leaves the streams on NATS
	// (they then show as orphaned) and lets the pipeline go; 0 means
	// defaultQueueDeletionTimeout. Pending events with pendingEventsOnDelete Wait are not a
	// failure and are waited for without a bound.
	QueueDeletionTimeout time.Duration
	// QueueStallGrace is how long, beyond two poll intervals, a pipeline's backlog may wait
	// with no ready inference pod before the pipeline reports Degraded=True QueueStalled;
	// 0 means defaultQueueStallGrace.
	QueueStallGrace time.Duration
	// StuckPodThreshold is how long a serving or inference pod may stay unready beside ready
	// siblings, or in CrashLoopBackOff, before it is deleted; 0 means defaultStuckPodThreshold.
	StuckPodThreshold time.Duration
	// StuckPodInterval is the least time between two deletions of stuck pods of one
	// Deployment; 0 means defaultStuckPodInterval.
	StuckPodInterval time.Duration
	// RolloutPollInterval is how often the serving pods of a model rollout under way are looked
	// at, so that one that exits because the model cannot load is reported at once (the
	// Deployment's status does not change when a new pod crashes); 0 means
	// defaultRolloutPollInterval.
	RolloutPollInterval time.Duration
	// OTLPEndpoint, when set, turns tracing on in every data-plane pod: it becomes their
	// OTEL_EXPORTER_OTLP_ENDPOINT, the base URL of an OTLP/HTTP receiver (e.g.
	// http://otel-collector.observability.svc:4318). Empty leaves tracing off.
	OTLPEndpoint string
	// TraceSamplingRatio is the share of the traces a data-plane pod starts itself that are
	// sampled (OTEL_TRACES_SAMPLER=parentbased_traceidratio); a request or event that arrives
	// with a trace context follows its sampling decision. Read only with OTLPEndpoint.
	TraceSamplingRatio float64
}

// defaultQueueDeletionTimeout outlasts a NATS rolling restart or a leader election by far, and
// is short enough that an Argo CD sync deleting a pipeline on a NATS that is gone for good
// finishes within minutes.
const defaultQueueDeletionTimeout = 10 * time.Minute

// defaultQueueStallGrace leaves a starting pool the time a pod usually needs to pull its image
// and load a small model, so that a scale-up from zero is not reported as a stall.
const defaultQueueStallGrace = 30 * time.Second

// defaultRolloutPollInterval reports a serving pod that cannot load its model within about two
// seconds of its exit, for one pod list per rolling model every two seconds.
const defaultRolloutPollInterval = 2 * time.Second
