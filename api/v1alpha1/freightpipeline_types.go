package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// FreightPipelineSpec is a data path: ingestion pods publish freight events to a NATS JetStream
// stream, an inference pool consumes it with the referenced model, and predictions are kept by event id.
type FreightPipelineSpec struct {
	// modelRef names the PredictionModel, in the pipeline's namespace, that scores the events.
	// The pipeline waits, with a condition saying so, until that model exists and has loaded.
	// +required
	ModelRef ModelReference `json:"modelRef"`

	// queue configures the pipeline's JetStream stream and consumer.
	// +kubebuilder:default={}
	// +optional
	Queue QueueSpec `json:"queue,omitempty"`

	// ingestion configures the pods that accept events over HTTP.
	// +kubebuilder:default={}
	// +optional
	Ingestion IngestionSpec `json:"ingestion,omitempty"`

	// inference configures the pool of workers that consume the queue, and its autoscaling.
	// +kubebuilder:default={}
	// +optional
	Inference InferenceSpec `json:"inference,omitempty"`

	// output configures where predictions go and how long they are kept.
	// +kubebuilder:default={}
	// +optional
	Output OutputSpec `json:"output,omitempty"`

	// networkPolicy configures the NetworkPolicy the operator writes for the pipeline's
	// ingestion and inference pods (on by default).
	// +kubebuilder:default={}
	// +optional
	NetworkPolicy NetworkPolicySpec `json:"networkPolicy,omitempty"`

	// features computes model features from the raw event at ingestion, each with a CEL
	// expression over `event` (the event's id and shipment); an event that carries a feature in
	// its `features` keeps that value. Expressions are type-checked and cost-bounded when the
	// pipeline is applied (see docs/transforms.md).
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=256
	// +optional
	Features []FeatureTransform `json:"features,omitempty"`

	// lookupTables are the tables the features' lookup(table, key, default) reads.
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=32
	// +optional
	LookupTables []LookupTable `json:"lookupTables,omitempty"`

	// reporting keeps, for the pipeline's clients, aggregates of its predictions by dimension
	// (a lane, a carrier) and time bucket, served under /v1/reports on the ingestion endpoint
	// with the same tokens (see docs/reporting.md). The operator runs it as its own
	// StatefulSet of one pod, NAME-reporting; removing the field removes it.
	// +optional
	Reporting *ReportingSpec `json:"reporting,omitempty"`
}

// ReportingSpec says what the reporting role aggregates.
// +kubebuilder:validation:XValidation:rule="!has(self.buckets) || size(self.buckets) < 2 || duration(self.buckets[0].width) < duration(self.buckets[1].width)",message="reporting.buckets must be listed finest first, each wider than the one before"
// +kubebuilder:validation:XValidation:rule="!has(self.buckets) || size(self.buckets) < 3 || duration(self.buckets[1].width) < duration(self.buckets[2].width)",message="reporting.buckets must be listed finest first, each wider than the one before"
// +kubebuilder:validation:XValidation:rule="!has(self.buckets) || size(self.buckets) < 4 || duration(self.buckets[2].width) < duration(self.buckets[3].width)",message="reporting.buckets must be listed finest first, each wider than the one before"
type ReportingSpec struct {
	// dimensions are what the predictions are grouped by, each a CEL expression over `event`
	// (the event's id and shipment, as the feature transforms see it) whose result, a string,
	// number or bool, is the group's value: `event.shipment.lane` is the plain field, and
	// `has(event.shipment.mode) ? event.shipment.mode : 'road'` gives a default. An event
	// without the field falls in the value `unknown`. The expressions are checked as the
	// feature transforms are, and may look up spec.lookupTables.
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=8
	// +required
	Dimensions []ReportDimension `json:"dimensions"`

	// outputs are the model outputs summarized; the first is the risk that threshold, the
	// riskiest shipments and the ordering of the answers use.
	// +listType=atomic
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=4
	// +required
	Outputs []ReportOutput `json:"outputs"`

	// threshold is the risk, on the first output, above which (inclusive) a prediction counts
	// as at risk, written as a string ("0.7"): the API has no floating-point fields.
	// +kubebuilder:default="0.5"
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:Pattern=`^-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?$`
	// +optional
	Threshold string `json:"threshold,omitempty"`

	// buckets are the time resolutions kept, finest first, each with how long it is kept; a
	// prediction counts in every one, by its predictedAt. Default: 5m kept 48h, 1h kept 90 days.
	// +listType=atomic
	// +kubebuilder:default={{width:"5m",retention:"48h"},{width:"1h",retention:"2160h"}}
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=4
	// +optional
	Buckets []ReportBucket `json:"buckets,omitempty"`

	// maxValues is the most distinct values kept per client and dimension; the values seen
	// after them are counted together as `other`, and the answers say how many were folded.
	// +kubebuilder:default=1000
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100000
	// +optional
	MaxValues int32 `json:"maxValues,omitempty"`

	// topShipments is how many of the riskiest shipments are kept per client and fine bucket.
	// +kubebuilder:default=20
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000
	// +optional
	TopShipments int32 `json:"topShipments,omitempty"`

	// resources of the reporting container.
	// +optional
	Resources corev1.ResourceRequirements `json:"resources,omitempty"`

	// credentials is the reporting pod's own NATS identity, mounted as spec.queue.credentials
	// is (same keys and types). A reporting user reaches only its consumer of the predictions
	// and its snapshot store, not the events (see docs/reporting.md). Unset: the pod connects
	// with spec.queue.credentials, which must then carry the reporting permissions too.
	// +optional
	Credentials *NATSCredentials `json:"credentials,omitempty"`
}

// ReportDimension is one grouping of the predictions.
type ReportDimension struct {
	// name is how the API and the page call the dimension (/v1/reports/NAME).
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z][a-z0-9_]*$`
	// +required
	Name string `json:"name"`

	// expression is a CEL expression over `event` whose result is the dimension's value.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=4096
	// +required
	Expression string `json:"expression"`
}

// ReportOutput is one element of a model output.
type ReportOutput struct {
	// name of the model output (a key of the prediction record's outputs).
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +required
	Name string `json:"name"`

	// index is the element of the output's values summarized: 1 for the probability of the
	// positive class of a [N,2] probabilities output, 0 for a single score.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=4095
	// +optional
	Index int32 `json:"index,omitempty"`
}

// ReportBucket is one time resolution of the aggregates.
// +kubebuilder:validation:XValidation:rule="duration(self.retention) >= duration(self.width)",message="a reporting bucket's retention must be at least its width"
type ReportBucket struct {
	// width of a bucket; buckets start at multiples of it since the Unix epoch, in UTC.
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1m') && duration(self) <= duration('24h')",message="reporting bucket width must be between 1m and 24h"
	// +required
	Width metav1.Duration `json:"width"`

	// retention is how long the buckets of this width are kept.
	// +kubebuilder:validation:XValidation:rule="duration(self) <= duration('8760h')",message="reporting bucket retention must be at most 8760h"
	// +required
	Retention metav1.Duration `json:"retention"`
}

// FeatureTransform computes one model feature from the raw event.
type FeatureTransform struct {
	// name is the model feature the expression computes.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +required
	Name string `json:"name"`

	// expression is a CEL expression over `event` whose result is the feature's value: a
	// number (or the type of the model input the feature feeds).
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=4096
	// +required
	Expression string `json:"expression"`
}

// LookupTable maps keys (a carrier, a port) to numbers the feature expressions look up: given
// inline (values) or kept in a ConfigMap (configMapRef), exactly one of the two.
// +kubebuilder:validation:XValidation:rule="has(self.values) != has(self.configMapRef)",message="a lookup table takes exactly one of values and configMapRef"
type LookupTable struct {
	// name is what lookup('name', key, default) calls the table.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +required
	Name string `json:"name"`

	// values maps each key to a number, written as a string ("0.71"): the API has no
	// floating-point fields.
	// +kubebuilder:validation:MaxProperties=4096
	// +optional
	Values map[string]string `json:"values,omitempty"`

	// configMapRef reads the table from a ConfigMap in the pipeline's namespace, which the
	// operator watches: an edit rolls the ingestion pods like any other change of the spec.
	// +optional
	ConfigMapRef *LookupTableConfigMapRef `json:"configMapRef,omitempty"`
}

// LookupTableConfigMapRef names the ConfigMap a lookup table is kept in. Without key, each entry
// of the ConfigMap's data is one entry of the table (`kubectl create configmap carrier-rates
// --from-literal=Maersk=0.71`); with key, that one entry holds the whole table as a JSON object
// of numbers (`{"DHL Freight": 0.94}`), for keys a ConfigMap's own keys cannot spell (spaces).
// Either way at most 4096 entries, each value a finite number.
type LookupTableConfigMapRef struct {
	// name of the ConfigMap.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`
	// +required
	Name string `json:"name"`

	// key of the ConfigMap's entry that holds the table as a JSON object; empty: every entry
	// is one of the table's.
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[-._a-zA-Z0-9]+$`
	// +optional
	Key string `json:"key,omitempty"`
}

// ModelReference names a PredictionModel in the same namespace.
type ModelReference struct {
	// name of the PredictionModel.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`
	// +required
	Name string `json:"name"`
}

// QueueSpec configures the pipeline's stream. Limits apply with DiscardNew: a full stream refuses
// new events (ingestion answers 503) rather than silently dropping accepted ones.
// +kubebuilder:validation:XValidation:rule="has(self.url) == has(oldSelf.url) && (!has(self.url) || self.url == oldSelf.url)",message="queue.url is immutable: events already in the old server's stream would be orphaned; create a new pipeline instead"
type QueueSpec struct {
	// url of the NATS server (nats:// or tls://). Empty means the operator's default NATS.
	// Immutable, because events already queued on one server cannot follow to another.
	// +kubebuilder:validation:MaxLength=1024
	// +kubebuilder:validation:XValidation:rule="isURL(self) && url(self).getScheme() in ['nats', 'tls'] && url(self).getHostname() != ''",message="queue.url must be a nats:// or tls:// URL with a host"
	// +optional
	URL string `json:"url,omitempty"`

	// maxMessages is the most events the stream holds.
	// +kubebuilder:default=1000000
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000000000
	// +optional
	MaxMessages int64 `json:"maxMessages,omitempty"`

	// maxBytes is the most storage the events stream uses; the output stream and the predictions
	// bucket have the same cap, and drop their oldest predictions when full. JetStream reserves
	// it up front, on every server holding a replica: a pipeline reserves
	// 3 × maxBytes × replicas of the NATS store, whether it holds events or not, and one that
	// does not fit is refused (QueueReady=False InsufficientStorage). The default, 256Mi, holds
	// about 790,000 waiting events of the sample's size (340 bytes stored) and the last 600,000
	// predictions (440 bytes). See docs/operate.md, "Capacity".
	// +kubebuilder:default="256Mi"
	// +kubebuilder:validation:XValidation:rule="quantity(self).isGreaterThan(quantity('1Mi')) || quantity(self).compareTo(quantity('1Mi')) == 0",message="queue.maxBytes must be at least 1Mi"
	// +optional
	MaxBytes *resource.Quantity `json:"maxBytes,omitempty"`

	// maxAge is how long an event may wait in the stream before it expires unprocessed.
	// +kubebuilder:default="24h"
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1m')",message="queue.maxAge must be at least 1m"
	// +optional
	MaxAge *metav1.Duration `json:"maxAge,omitempty"`

	// duplicateWindow is how long the stream remembers event ids, so a client's retry of an
	// event it already sent is acknowledged as a duplicate instead of queued twice.
	// +kubebuilder:default="2m"
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1s') && duration(self) <= duration('24h')",message="queue.duplicateWindow must be between 1s and 24h"
	// +optional
	DuplicateWindow *metav1.Duration `json:"duplicateWindow,omitempty"`

	// ackWait is how long a worker may hold an event before the queue redelivers it to another.
	// +kubebuilder:default="30s"
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1s') && duration(self) <= duration('1h')",message="queue.ackWait must be between 1s and 1h"
	// +optional
	AckWait *metav1.Duration `json:"ackWait,omitempty"`

	// maxDeliver is how many times an event is tried before it goes to the dead-letter subject.
	// +kubebuilder:default=5
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	// +optional
	MaxDeliver int32 `json:"maxDeliver,omitempty"`

	// replicas is how many NATS servers hold each of the pipeline's streams, its consumer and
	// its predictions bucket: 1, 3 or 5. With 3 the pipeline loses nothing and keeps accepting
	// events when one server dies, with 5 when two do; every replica reserves maxBytes per stream
	// on its server. Unset, the operator's default applies (--default-queue-replicas, which the
	// chart sets from its NATS cluster size). A change scales the streams in place.
	// +kubebuilder:validation:XValidation:rule="self in [1, 3, 5]",message="queue.replicas must be 1, 3 or 5: an odd number of servers, so that a majority survives a loss"
	// +optional
	Replicas *int32 `json:"replicas,omitempty"`

	// deletionPolicy is what becomes of the streams, consumer and predictions bucket when the
	// pipeline is deleted, like a PersistentVolume's reclaim policy. Delete (the default) removes
	// them and gives their reserved storage back, but not before the events stream is empty
	// (see pendingEventsOnDelete); Retain leaves them on NATS, and a pipeline created again with
	// the same name and namespace adopts them, events included.
	// +kubebuilder:default=Delete
	// +optional
	DeletionPolicy QueueDeletionPolicy `json:"deletionPolicy,omitempty"`

	// pendingEventsOnDelete says what Delete does with events no prediction has acknowledged
	// yet: Wait (the default) keeps the pipeline's inference pool running, stops its ingestion,
	// and deletes the streams once the pool has predicted them all; Drop deletes them at once.
	// +kubebuilder:default=Wait
	// +optional
	PendingEventsOnDelete PendingEventsPolicy `json:"pendingEventsOnDelete,omitempty"`

	// credentials is the pipeline's own NATS identity, from a Secret the operator mounts into the
	// ingestion and inference pods and never reads. With `freightcast nats-auth pipeline` (see
	// docs/security.md) it reaches this pipeline's subjects, stream, consumer and bucket only.
	// Unset: the pods connect without credentials.
	// +optional
	Credentials *NATSCredentials `json:"credentials,omitempty"`

	// tls makes the pods speak TLS to NATS, checking the servers' certificates against a CA.
	// +optional
	TLS *QueueTLS `json:"tls,omitempty"`
}

// QueueDeletionPolicy says what becomes of a deleted pipeline's streams.
// +kubebuilder:validation:Enum=Delete;Retain
type QueueDeletionPolicy string

const (
	// QueueDelete removes the streams, consumer and bucket with the pipeline.
	QueueDelete QueueDeletionPolicy = "Delete"
	// QueueRetain keeps them for a pipeline of the same name to adopt.
	QueueRetain QueueDeletionPolicy = "Retain"
)

// PendingEventsPolicy says what deleting a pipeline does with events not yet predicted.
// +kubebuilder:validation:Enum=Wait;Drop
type PendingEventsPolicy string

const (
	// PendingEventsWait holds the deletion until the inference pool has predicted them.
	PendingEventsWait PendingEventsPolicy = "Wait"
	// PendingEventsDrop deletes them with the stream.
	PendingEventsDrop PendingEventsPolicy = "Drop"
)

// NATSCredentialsType says which keys of the credentials Secret hold what.
// +kubebuilder:validation:Enum=Creds;NKey;UserPassword
type NATSCredentialsType string

const (
	// NATSCreds is a NATS credentials file (user JWT and NKey seed) under the key creds.
	NATSCreds NATSCredentialsType = "Creds"
	// NATSNKey is a user NKey seed under the key nkey.
	NATSNKey NATSCredentialsType = "NKey"
	// NATSUserPassword is a user name and password under the keys user and password.
	NATSUserPassword NATSCredentialsType = "UserPassword"
)

// NATSCredentials names the Secret of a pipeline's NATS identity.
type NATSCredentials struct {
	// secretRef names a Secret in the pipeline's namespace. Its keys: creds for type Creds
	// (what `freightcast nats-auth pipeline` prints), nkey for NKey, user and password for
	// UserPassword. A missing Secret or key keeps the pods in ContainerCreating.
	// +required
	SecretRef SecretReference `json:"secretRef"`

	// type is Creds (the default), NKey or UserPassword.
	// +kubebuilder:default=Creds
	// +optional
	Type NATSCredentialsType `json:"type,omitempty"`
}

// QueueTLS is how a pipeline's pods verify the NATS servers.
type QueueTLS struct {
	// caSecretRef names a Secret in the pipeline's namespace whose key ca.crt holds the PEM CA
	// bundle of the NATS servers' certificates (cert-manager's Secrets have one).
	// +required
	CASecretRef SecretReference `json:"caSecretRef"`
}

// IngestionSpec configures the HTTP ingestion pods.
type IngestionSpec struct {
	// replicas of the ingestion Deployment.
	// +kubebuilder:default=2
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	// +optional
	Replicas *int32 `json:"replicas,omitempty"`

	// resources of each ingestion container.
	// +optional
	Resources corev1.ResourceRequirements `json:"resources,omitempty"`

	// auth requires a bearer token on every request. The operator mounts the Secret into the
	// ingestion pods; it never reads it itself.
	// +optional
	Auth *BearerTokenAuth `json:"auth,omitempty"`

	// tls makes the ingestion pods serve HTTPS with the certificate of a kubernetes.io/tls
	// Secret. The operator mounts the Secret; it never reads it itself.
	// +optional
	TLS *TLSSpec `json:"tls,omitempty"`

	// route exposes the ingestion API (/v1) through a Gateway API HTTPRoute attached to the
	// named Gateway. The health and metrics paths stay inside the cluster.
	// +optional
	Route *RouteSpec `json:"route,omitempty"`

	// rateLimit caps the events per second of each token for the pipeline as a whole: its
	// ingestion pods share it, each admitting the limit divided by the live pods it hears on
	// NATS. Without auth, all clients share one budget. Precision: docs/operate.md.
	// +optional
	RateLimit *RateLimitSpec `json:"rateLimit,omitempty"`

	// maxBodyBytes caps one request body; larger bodies get 413.
	// +kubebuilder:default="4Mi"
	// +kubebuilder:validation:XValidation:rule="quantity(self).compareTo(quantity('1Ki')) >= 0 && quantity(self).compareTo(quantity('64Mi')) <= 0",message="ingestion.maxBodyBytes must be between 1Ki and 64Mi"
	// +optional
	MaxBodyBytes *resource.Quantity `json:"maxBodyBytes,omitempty"`
}

// RateLimitSpec is a token bucket, the pipeline's; each ingestion pod holds its share.
// +kubebuilder:validation:XValidation:rule="!has(self.burst) || self.burst >= self.eventsPerSecond",message="rateLimit.burst must be at least rateLimit.eventsPerSecond"
type RateLimitSpec struct {
	// eventsPerSecond is the sustained rate allowed; events beyond it get 429 with Retry-After.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=10000000
	// +required
	EventsPerSecond int32 `json:"eventsPerSecond"`

	// burst is how many events may arrive at once across the pipeline, and the largest body
	// (413 above it); defaults to eventsPerSecond.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=10000000
	// +optional
	Burst int32 `json:"burst,omitempty"`
}

// InferenceSpec configures the inference pool and how it scales on queue depth.
// +kubebuilder:validation:XValidation:rule="!has(self.minReplicas) || !has(self.maxReplicas) || self.minReplicas <= self.maxReplicas",message="inference.minReplicas must not exceed inference.maxReplicas"
// +kubebuilder:validation:XValidation:rule="!has(self.fallback) || !has(self.maxReplicas) || !has(self.minReplicas) || (self.fallback.replicas >= self.minReplicas && self.fallback.replicas <= self.maxReplicas)",message="inference.fallback.replicas must lie within [minReplicas, maxReplicas]"
type InferenceSpec struct {
	// minReplicas is the fewest workers; 0 lets the pool scale to zero when the queue is empty.
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=1000
	// +optional
	MinReplicas *int32 `json:"minReplicas,omitempty"`

	// maxReplicas is the most workers the autoscaler may run.
	// +kubebuilder:default=10
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000
	// +optional
	MaxReplicas int32 `json:"maxReplicas,omitempty"`

	// targetQueueDepthPerReplica is the queue depth (pending + unacknowledged events) one worker
	// is expected to hold; desired workers = ceil(depth / target).
	// +kubebuilder:default=100
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=10000000
	// +optional
	TargetQueueDepthPerReplica int64 `json:"targetQueueDepthPerReplica,omitempty"`

	// pollInterval is how often the operator reads the queue depth.
	// +kubebuilder:default="2s"
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('500ms') && duration(self) <= duration('5m')",message="inference.pollInterval must be between 500ms and 5m"
	// +optional
	PollInterval *metav1.Duration `json:"pollInterval,omitempty"`

	// scaleUp governs how fast the pool grows.
	// +optional
	ScaleUp *ScalingRules `json:"scaleUp,omitempty"`

	// scaleDown governs how fast the pool shrinks. Workers finish and acknowledge what they
	// hold before they exit, so a scale-down loses nothing.
	// +optional
	ScaleDown *ScalingRules `json:"scaleDown,omitempty"`

	// tolerancePercent is the dead band around the target: the pool keeps its size while the
	// queue depth is within this percentage of what the current workers are meant to hold.
	// +kubebuilder:default=10
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	// +optional
	TolerancePercent int32 `json:"tolerancePercent,omitempty"`

	// activationQueueDepth is the queue depth above which a pool at zero workers starts one.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=1000000000
	// +optional
	ActivationQueueDepth int64 `json:"activationQueueDepth,omitempty"`

	// drainTarget, when set, sizes the pool so that the backlog clears within this time at the
	// workers' measured throughput, whatever the model's speed; until a throughput is measured,
	// targetQueueDepthPerReplica applies.
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1s') && duration(self) <= duration('1h')",message="inference.drainTarget must be between 1s and 1h"
	// +optional
	DrainTarget *metav1.Duration `json:"drainTarget,omitempty"`

	// fallback is the pool size to use when the queue depth cannot be read (NATS unreachable, or
	// the consumer missing) for failureThreshold polls in a row. Without it the pool keeps its
	// size: an unknown depth is never read as zero or as infinite.
	// +optional
	Fallback *FallbackSpec `json:"fallback,omitempty"`

	// batchSize is the most events a worker takes from the queue in one fetch and model run.
	// +kubebuilder:default=64
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=4096
	// +optional
	BatchSize int32 `json:"batchSize,omitempty"`

	// resources of each worker container.
	// +optional
	Resources corev1.ResourceRequirements `json:"resources,omitempty"`

	// scoring is where the pool runs the model: InProcess, each worker with Freightcast's own
	// runtime, or Remote, each batch one Open Inference Protocol request to the model's
	// Service. Empty means Remote for a model served by spec.runtime, InProcess otherwise.
	// +optional
	Scoring ScoringMode `json:"scoring,omitempty"`
}

// ScoringMode is where an inference pool runs its model.
// +kubebuilder:validation:Enum=InProcess;Remote
type ScoringMode string

// The scoring modes.
const (
	ScoringInProcess ScoringMode = "InProcess"
	ScoringRemote    ScoringMode = "Remote"
)

// FallbackSpec is the pool size to hold while the queue depth is unknown.
type FallbackSpec struct {
	// failureThreshold is how many failed reads in a row switch to the fallback size.
	// +kubebuilder:default=3
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	// +optional
	FailureThreshold int32 `json:"failureThreshold,omitempty"`

	// replicas is the fallback pool size.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=1000
	// +required
	Replicas int32 `json:"replicas"`
}

// ScalingPolicyType says how a ScalingPolicy's value is read.
// +kubebuilder:validation:Enum=Pods;Percent
type ScalingPolicyType string

const (
	// ScalingPolicyPods limits the change to a number of pods per period.
	ScalingPolicyPods ScalingPolicyType = "Pods"
	// ScalingPolicyPercent limits the change to a percentage of the current pods per period.
	ScalingPolicyPercent ScalingPolicyType = "Percent"
)

// ScalingPolicySelect chooses among several policies.
// +kubebuilder:validation:Enum=Max;Min;Disabled
type ScalingPolicySelect string

const (
	// SelectMax picks the policy allowing the largest change.
	SelectMax ScalingPolicySelect = "Max"
	// SelectMin picks the policy allowing the smallest change.
	SelectMin ScalingPolicySelect = "Min"
	// SelectDisabled forbids changes in this direction.
	SelectDisabled ScalingPolicySelect = "Disabled"
)

// ScalingRules mirror the HorizontalPodAutoscaler v2 behavior rules for one direction.
type ScalingRules struct {
	// stabilizationWindow: recommendations over this past window are considered, and the most
	// conservative one wins (the highest for scale-down, the lowest for scale-up).
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('0s') && duration(self) <= duration('1h')",message="stabilizationWindow must be between 0s and 1h"
	// +optional
	StabilizationWindow *metav1.Duration `json:"stabilizationWindow,omitempty"`

	// policies cap the rate of change.
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=10
	// +optional
	Policies []ScalingPolicy `json:"policies,omitempty"`

	// selectPolicy chooses among policies; Disabled forbids scaling in this direction.
	// +kubebuilder:default=Max
	// +optional
	SelectPolicy ScalingPolicySelect `json:"selectPolicy,omitempty"`
}

// ScalingPolicy allows at most value pods (or percent) of change per period.
type ScalingPolicy struct {
	// type is Pods or Percent.
	// +required
	Type ScalingPolicyType `json:"type"`

	// value is the number of pods, or the percentage of current pods.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000
	// +required
	Value int32 `json:"value"`

	// period over which the change is counted.
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1s') && duration(self) <= duration('30m')",message="policy period must be between 1s and 30m"
	// +required
	Period metav1.Duration `json:"period"`
}

// OutputSpec configures the predictions.
type OutputSpec struct {
	// predictionRetention is how long a prediction stays readable by event id.
	// +kubebuilder:default="24h"
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1m') && duration(self) <= duration('8760h')",message="output.predictionRetention must be between 1m and 8760h"
	// +optional
	PredictionRetention *metav1.Duration `json:"predictionRetention,omitempty"`

	// recordInputs keeps the features the model saw (computed by spec.features or sent by the
	// client) in each prediction record, under "features", for audits and for training the next
	// model. Off by default: it makes every record larger.
	// +optional
	RecordInputs bool `json:"recordInputs,omitempty"`
}

// FreightPipelineStatus is what the operator observed of the pipeline.
type FreightPipelineStatus struct {
	// conditions: Ready, Progressing, Degraded, IngestionReady, QueueReady, InferenceReady,
	// and with spec.reporting ReportingValid and ReportingReady.
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// observedGeneration is the metadata.generation this status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// ingestionEndpoint is the in-cluster URL clients POST events to (…/v1/events).
	// +optional
	IngestionEndpoint string `json:"ingestionEndpoint,omitempty"`

	// stream is the JetStream stream that holds the pipeline's events.
	// +optional
	Stream string `json:"stream,omitempty"`

	// ingestion reports the ingestion Deployment's pods.
	// +optional
	Ingestion ReplicaStatus `json:"ingestion,omitempty"`

	// inference reports the inference pool's pods.
	// +optional
	Inference ReplicaStatus `json:"inference,omitempty"`

	// reporting reports the reporting StatefulSet's pod (with spec.reporting).
	// +optional
	Reporting *ReplicaStatus `json:"reporting,omitempty"`

	// autoscaling reports the last queue-depth sample and scaling decision.
	// +optional
	Autoscaling *AutoscalingStatus `json:"autoscaling,omitempty"`

	// queue reports the pipeline's events stream on NATS: its replication and what it reserves.
	// +optional
	Queue *QueueStatus `json:"queue,omitempty"`
}

// QueueStatus is the events stream as its leader reports it.
type QueueStatus struct {
	// replicas is how many servers hold the stream now; it follows spec.queue.replicas once a
	// change has been applied.
	// +optional
	Replicas int32 `json:"replicas,omitempty"`
	// leader is the server leading the stream: it stores each event first and acknowledges it
	// once a majority of the replicas has it. Empty when no server leads it (no quorum).
	// +kubebuilder:validation:MaxLength=256
	// +optional
	Leader string `json:"leader,omitempty"`
	// laggingReplicas are the servers whose replica is behind the leader or offline.
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=5
	// +kubebuilder:validation:items:MaxLength=256
	// +optional
	LaggingReplicas []string `json:"laggingReplicas,omitempty"`
	// reservedBytes is the store the pipeline's streams reserve across the servers:
	// 3 × maxBytes × replicas.
	// +optional
	ReservedBytes int64 `json:"reservedBytes,omitempty"`
}

// AutoscalingStatus is the autoscaler's view of the inference pool.
type AutoscalingStatus struct {
	// queueDepth is the last queue depth read (pending + unacknowledged events). Absent when it
	// could not be read: an unknown depth is never reported as zero.
	// +optional
	QueueDepth *int64 `json:"queueDepth,omitempty"`
	// currentReplicas is the pool size when the decision was made.
	// +optional
	CurrentReplicas int32 `json:"currentReplicas"`
	// desiredReplicas is the pool size the autoscaler decided.
	// +optional
	DesiredReplicas int32 `json:"desiredReplicas"`
	// lastScaleTime is when the autoscaler last changed the pool size.
	// +optional
	LastScaleTime *metav1.Time `json:"lastScaleTime,omitempty"`
	// reason explains the last decision.
	// +kubebuilder:validation:MaxLength=1024
	// +optional
	Reason string `json:"reason,omitempty"`
	// stalledSince is when the autoscaler first saw events wait in the queue with no ready
	// inference pod to consume them while the pool wants pods; absent when they do not. Once
	// that has lasted the operator's stall grace plus two poll intervals, the pipeline reports
	// Degraded=True QueueStalled. Kept in status, so a new leader carries on from it.
	// +optional
	StalledSince *metav1.Time `json:"stalledSince,omitempty"`
}

// ReplicaStatus counts a Deployment's pods.
type ReplicaStatus struct {
	// replicas is the number of pods.
	// +optional
	Replicas int32 `json:"replicas"`
	// readyReplicas is the number of pods passing readiness.
	// +optional
	ReadyReplicas int32 `json:"readyReplicas"`
}

// FreightPipeline runs ingestion → NATS JetStream → inference pool → predictions for one model.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:validation:XValidation:rule="size(self.metadata.name) <= 48 && self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')",message="metadata.name must be a DNS-1035 label of at most 48 characters: it names the Services the operator creates (NAME-inference)"
// +kubebuilder:resource:shortName=fp,categories=freightcast
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`
// +kubebuilder:printcolumn:name="Model",type=string,JSONPath=`.spec.modelRef.name`
// +kubebuilder:printcolumn:name="Queue Depth",type=integer,JSONPath=`.status.autoscaling.queueDepth`
// +kubebuilder:printcolumn:name="Workers",type=integer,JSONPath=`.status.inference.readyReplicas`,description="Ready inference pool pods"
// +kubebuilder:printcolumn:name="Desired",type=integer,JSONPath=`.status.autoscaling.desiredReplicas`
// +kubebuilder:printcolumn:name="Ingestion",type=integer,JSONPath=`.status.ingestion.readyReplicas`,priority=1
// +kubebuilder:printcolumn:name="Queue Replicas",type=integer,JSONPath=`.status.queue.replicas`,priority=1
// +kubebuilder:printcolumn:name="Reporting",type=string,JSONPath=`.status.conditions[?(@.type=="ReportingReady")].status`,priority=1,description="ReportingReady: the reporting pod is ready (with spec.reporting)"
// +kubebuilder:printcolumn:name="Endpoint",type=string,JSONPath=`.status.ingestionEndpoint`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type FreightPipeline struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is the desired pipeline.
	// +required
	Spec FreightPipelineSpec `json:"spec"`

	// status is what the operator observed.
	// +optional
	Status FreightPipelineStatus `json:"status,omitempty"`
}

// FreightPipelineList is a list of FreightPipelines.
// +kubebuilder:object:root=true
type FreightPipelineList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []FreightPipeline `json:"items"`
}
