package v1alpha1

// Condition types shared by both kinds. Ready, Progressing and Degraded follow kstatus, which Argo CD
// and Flux read; the per-stage types say which part of the data path is at fault.
const (
	// ConditionReady is True when every part is serving the current spec.
	ConditionReady = "Ready"
	// ConditionProgressing is True while the operator is converging children on a new spec.
	ConditionProgressing = "Progressing"
	// ConditionDegraded is True when something failed that waiting alone may not fix.
	ConditionDegraded = "Degraded"

	// ConditionModelLoaded (PredictionModel) is True when serving pods of the current model revision
	// have loaded the model: they only report ready after a successful load.
	ConditionModelLoaded = "ModelLoaded"

	// ConditionIngestionReady (FreightPipeline) is True when the ingestion Deployment is available.
	ConditionIngestionReady = "IngestionReady"
	// ConditionQueueReady (FreightPipeline) is True when the pipeline's stream, consumer and
	// prediction bucket exist on a reachable NATS server and match the spec.
	ConditionQueueReady = "QueueReady"
	// ConditionInferenceReady (FreightPipeline) is True when the inference pool can consume: its
	// model is loaded and its Deployment has ready workers (or is scaled to zero on purpose).
	ConditionInferenceReady = "InferenceReady"

	// ConditionRouteReady (both kinds, only with spec.route / spec.ingestion.route) is True when
	// the operator has written the HTTPRoute; False when it cannot (e.g. no Gateway API CRDs).
	// It does not make Ready False: the API stays reachable inside the cluster.
	ConditionRouteReady = "RouteReady"
	// ConditionFeaturesValid (FreightPipeline, only with spec.features or spec.lookupTables) is
	// True when every feature transform compiles: parsed, type-checked against the model and
	// within the cost limit. While it is False the pods keep the configuration they run.
	ConditionFeaturesValid = "FeaturesValid"
	// ConditionReportingValid (FreightPipeline, only with spec.reporting) is True when every
	// reporting dimension compiles, as the feature transforms do, and the threshold is a number.
	// While it is False the reporting pod keeps the configuration it runs.
	ConditionReportingValid = "ReportingValid"
	// ConditionReportingReady (FreightPipeline, only with spec.reporting) is True when the
	// reporting StatefulSet has its ready pod. It does not make Ready False: events are still
	// accepted and predicted, and the reports catch up from the stream when it is back.
	ConditionReportingReady = "ReportingReady"
)

// Condition reasons, PascalCase as metav1.Condition requires.
const (
	// ReasonRouteApplied: the HTTPRoute is written; the Gateway's own status says whether it
	// accepted it.
	ReasonRouteApplied = "RouteApplied"
	// ReasonFeaturesCompiled: every feature transform compiled.
	ReasonFeaturesCompiled = "FeaturesCompiled"
	// ReasonInvalidFeatureTransform: a feature transform or lookup table is refused; the message
	// names the feature, the expression and the error.
	ReasonInvalidFeatureTransform = "InvalidFeatureTransform"
	// ReasonInvalidLookupTable: a table of spec.lookupTables[].configMapRef cannot be read: its
	// ConfigMap or key is missing, a value is not a number, or it holds too many entries; the
	// message names the table, the ConfigMap and the key.
	ReasonInvalidLookupTable = "InvalidLookupTable"
	// ReasonReportingCompiled: every reporting dimension compiled.
	ReasonReportingCompiled = "ReportingCompiled"
	// ReasonInvalidReporting: a reporting dimension or the threshold is refused; the message
	// names the dimension, the expression and the error.
	ReasonInvalidReporting = "InvalidReporting"
	// ReasonGatewayAPIUnavailable: the cluster does not serve gateway.networking.k8s.io/v1
	// HTTPRoutes (the Gateway API CRDs are not installed, or were installed after the operator
	// started: it detects them at startup).
	ReasonGatewayAPIUnavailable = "GatewayAPIUnavailable"

	// ReasonReconciling: the operator has not yet observed the outcome of its last change.
	ReasonReconciling = "Reconciling"
	// ReasonAvailable: the component has the replicas it needs, all on the current revision.
	ReasonAvailable = "Available"
	// ReasonRollingOut: a new revision is being rolled out.
	ReasonRollingOut = "RollingOut"
	// ReasonUnavailable: no ready replica.
	ReasonUnavailable = "Unavailable"
	// ReasonScaledToZero: no replica is wanted now, by spec or by the autoscaler.
	ReasonScaledToZero = "ScaledToZero"
	// ReasonProgressDeadlineExceeded: a rollout stopped making progress (from the Deployment).
	ReasonProgressDeadlineExceeded = "ProgressDeadlineExceeded"
	// ReasonAsExpected: nothing is degraded.
	ReasonAsExpected = "AsExpected"
	// ReasonReconciled: the children match the spec.
	ReasonReconciled = "Reconciled"
	// ReasonApplyFailed: writing a child object failed.
	ReasonApplyFailed = "ApplyFailed"

	// ReasonSourceNotFound: the model's ConfigMap or key does not exist.
	ReasonSourceNotFound = "SourceNotFound"
	// ReasonSourceInvalid: the model's source exists but cannot be used (e.g. empty).
	ReasonSourceInvalid = "SourceInvalid"
	// ReasonLoading: serving pods exist but none has loaded the model yet.
	ReasonLoading = "Loading"
	// ReasonModelLoaded: at least one pod of the current revision has loaded the model.
	ReasonModelLoaded = "Loaded"

	// ReasonRolloutFailed: a rollout of a new model revision made no progress within
	// spec.progressDeadlineSeconds; the serving pods were rolled back to the last good revision.
	ReasonRolloutFailed = "RolloutFailed"
	// ReasonUnsupportedModel: the operator loaded the model file with the runtime the pods use
	// and it refused the model (an operator, opset or element type it does not run, named in
	// the message); no pod was moved to it.
	ReasonUnsupportedModel = "UnsupportedModel"
	// ReasonInvalidModel: the operator loaded the model file with the runtime the pods use and
	// found it is not a consistent ONNX model, or does not match spec.features; no pod was
	// moved to it.
	ReasonInvalidModel = "InvalidModel"
	// ReasonModelLoadFailed: a pod of the model's revision exited because the model cannot
	// load (exit code 78), with its termination message; the serving pods were rolled back to
	// the last good revision when there is one. For a pipeline: its model cannot load.
	ReasonModelLoadFailed = "ModelLoadFailed"
	// ReasonCrashLoopBackOff: a serving pod is in CrashLoopBackOff.
	ReasonCrashLoopBackOff = "CrashLoopBackOff"
	// EventReasonRestartedStuckPod is the Normal event of a stuck pod deleted to be rescheduled.
	EventReasonRestartedStuckPod = "RestartedStuckPod"
	// EventReasonRolledBack is the Warning event of a rollback to the last good revision.
	EventReasonRolledBack = "RolledBack"

	// ReasonModelNotFound: the pipeline's modelRef names no PredictionModel.
	ReasonModelNotFound = "ModelNotFound"
	// ReasonModelNotReady: the pipeline's model exists but has not loaded.
	ReasonModelNotReady = "ModelNotReady"
	// ReasonModelFeaturesUndeclared (FreightPipeline): the pipeline's model is served by
	// spec.runtime but does not declare spec.features, which the pipeline's pods need to map
	// events into its input (they do not read a file another runtime serves).
	ReasonModelFeaturesUndeclared = "ModelFeaturesUndeclared"
	// ReasonModelUnavailable (FreightPipeline): the pool scores through its model's Service
	// (spec.inference.scoring Remote, or a model served by spec.runtime), and no serving pod of
	// the model is ready; the events wait in the queue until one is.
	ReasonModelUnavailable = "ModelUnavailable"
	// ReasonQueueProvisioned: stream, consumer and bucket exist and match the spec.
	ReasonQueueProvisioned = "Provisioned"
	// ReasonQueueUnreachable: the NATS server did not answer.
	ReasonQueueUnreachable = "NATSUnreachable"
	// ReasonQueueNotConfigured: neither the pipeline nor the operator names a NATS server.
	ReasonQueueNotConfigured = "QueueNotConfigured"
	// ReasonQueueProvisionFailed: NATS answered but refused the stream, consumer or bucket.
	ReasonQueueProvisionFailed = "ProvisionFailed"
	// ReasonNoQuorum: the pipeline's events stream has no leader: fewer than a majority of its
	// replicas' servers are up. Nothing is accepted until they are.
	ReasonNoQuorum = "NoQuorum"
	// ReasonInsufficientStorage: the NATS store cannot reserve the pipeline's streams; the
	// message gives what it needs, what is free and where. Nothing of the pipeline is created.
	ReasonInsufficientStorage = "InsufficientStorage"
	// ReasonQueueConverging: the streams accept events, and a change of their replicas is still
	// under way: new replicas are being copied, or the consumer waits to follow the stream.
	ReasonQueueConverging = "Converging"
	// ReasonNotEnoughServers: spec.queue.replicas asks for more servers than the NATS cluster has
	// (or NATS is not clustered at all).
	ReasonNotEnoughServers = "NotEnoughServers"
	// ReasonQueueDeletionFailed: the pipeline is being deleted with deletionPolicy Delete and
	// NATS refused to delete its streams; the message says why and until when it is retried.
	ReasonQueueDeletionFailed = "DeletionFailed"
	// ReasonPendingEvents: the pipeline is being deleted with deletionPolicy Delete, and its
	// events stream still holds events no prediction has acknowledged.
	ReasonPendingEvents = "PendingEvents"
	// EventReasonQueueRescaled is the Normal event of the streams' replicas changed in place.
	EventReasonQueueRescaled = "QueueRescaled"
	// EventReasonQueueAdopted is the Normal event of a pipeline adopting retained streams.
	EventReasonQueueAdopted = "QueueAdopted"
	// EventReasonQueueDeleted is the Normal event of a deleted pipeline's streams removed.
	EventReasonQueueDeleted = "QueueDeleted"
	// EventReasonQueueRetained is the event of a deleted pipeline's streams left on NATS: Normal
	// with deletionPolicy Retain, Warning when a Delete could not be done (NATS unreachable past
	// the operator's --queue-deletion-timeout, or the namespace going away with events pending).
	EventReasonQueueRetained = "QueueRetained"
	// EventReasonQueueDeletionWaiting is the Warning event of a deletion held by pending events.
	EventReasonQueueDeletionWaiting = "QueueDeletionWaiting"
	// ReasonQueueStalled: events wait in the queue while the inference pool, which wants pods,
	// has had none ready for longer than the operator's stall threshold.
	ReasonQueueStalled = "QueueStalled"
	// ReasonPipelineReady: ingestion, queue and inference are all ready.
	ReasonPipelineReady = "PipelineReady"
)
