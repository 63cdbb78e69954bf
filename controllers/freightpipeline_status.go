package controllers

import (
	"fmt"
	"slices"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	freightcastv1alpha1 "github.com/freightcast/freightcast/api/v1alpha1"
	"github.com/freightcast/freightcast/internal/pipelineconfig"
	"github.com/freightcast/freightcast/internal/queue"
	"github.com/freightcast/freightcast/internal/spec"
)

// pipelineObservation is what one reconcile of a FreightPipeline learned.
type pipelineObservation struct {
	// route is what became of spec.ingestion.route.
	route routeObservation
	// model is the referenced PredictionModel, nil when it does not exist.
	model *freightcastv1alpha1.PredictionModel
	// queue is what became of the pipeline's streams.
	queue queueObservation
	// ingestion and inference are the Deployments' rollouts.
	ingestion, inference rollout
	// applyErr is the first error writing a child.
	applyErr error
	// queueStall is a backlog that no ready inference pod has consumed for longer than the
	// stall threshold; nil when there is none.
	queueStall *queueStall
	// features is what became of spec.features and spec.lookupTables.
	features featuresObservation
	// reportingSpec is what became of spec.reporting's dimensions; reporting the reporting
	// Deployment's rollout.
	reportingSpec featuresObservation
	reporting     rollout
}

// featuresObservation is the outcome of compiling the pipeline's feature transforms.
type featuresObservation struct {
	// declared: the spec has transforms or tables.
	declared bool
	// err is why they do not compile; nil when they do.
	err error
	// reason is err's condition reason.
	reason string
	// transforms are the transforms with the ConfigMaps' tables read, which the pods get.
	transforms pipelineconfig.Transforms
}

// setFeaturesValid sets FeaturesValid from the compiled transforms, and removes it when the
// spec has none.
func setFeaturesValid(c *conditionSetter, obs featuresObservation, count int) {
	setCompiled(c, freightcastv1alpha1.ConditionFeaturesValid, obs, freightcastv1alpha1.ReasonInvalidFeatureTransform,
		freightcastv1alpha1.ReasonFeaturesCompiled, fmt.Sprintf("%d feature transforms compiled", count))
}

// setCompiled sets condType from expressions compiled: True with okMessage, False with badReason
// and the error, and removes it when the spec declares none.
func setCompiled(c *conditionSetter, condType string, obs featuresObservation, badReason, okReason, okMessage string) {
	switch {
	case !obs.declared:
		meta.RemoveStatusCondition(&c.conditions, condType)
	case obs.err != nil:
		reason := obs.reason
		if reason == "" {
			reason = badReason
		}
		c.set(condType, metav1.ConditionFalse, reason, "the pods keep their last configuration until this is fixed: "+obs.err.Error())
	default:
		c.set(condType, metav1.ConditionTrue, okReason, okMessage)
	}
}

// queueStall is a backlog that no ready inference pod consumes.
type queueStall struct {
	// since is the first sample that saw it.
	since time.Time
}

// observeQueueStall reads the stall the autoscaler records in status.autoscaling.stalledSince.
// It counts once it has lasted grace plus two poll intervals: two, so that a sample taken just
// before a pod turned ready never counts; the grace for pods to start. recheck is how long until
// a stall that does not count yet will, 0 when there is none.
func observeQueueStall(p *freightcastv1alpha1.FreightPipeline, grace time.Duration, now time.Time) (stall *queueStall, recheck time.Duration) {
	a := p.Status.Autoscaling
	if a == nil || a.StalledSince == nil {
		return nil, 0
	}
	_, interval := spec.Autoscale(p)
	since := a.StalledSince.Time
	if left := since.Add(grace + 2*interval).Sub(now); left > 0 {
		return nil, left
	}
	return &queueStall{since: since}, 0
}

// modelLoaded reports whether the model has loaded its current spec, and why not.
func modelLoaded(model *freightcastv1alpha1.PredictionModel) (bool, string) {
	c := meta.FindStatusCondition(model.Status.Conditions, freightcastv1alpha1.ConditionModelLoaded)
	switch {
	case c == nil:
		return false, fmt.Sprintf("PredictionModel %s has not reported ModelLoaded yet", model.Name)
	case c.ObservedGeneration != model.Generation:
		return false, fmt.Sprintf("PredictionModel %s has not reported on its current spec yet", model.Name)
	case c.Status != metav1.ConditionTrue:
		return false, fmt.Sprintf("PredictionModel %s: ModelLoaded=%s (%s): %s", model.Name, c.Status, c.Reason, c.Message)
	}
	return true, ""
}

// pipelineStatus derives the whole status from the observation, one condition setter after the
// other; it is pure. status.autoscaling, the autoscaler's, is carried over unchanged.
func pipelineStatus(p *freightcastv1alpha1.FreightPipeline, obs pipelineObservation, now time.Time) freightcastv1alpha1.FreightPipelineStatus {
	st := p.Status
	st.ObservedGeneration = p.Generation
	st.IngestionEndpoint = ingestionEndpoint(p)
	st.Stream = queue.TopologyFor(p.Namespace, p.Name).Stream
	st.Ingestion = freightcastv1alpha1.ReplicaStatus{Replicas: obs.ingestion.replicas, ReadyReplicas: obs.ingestion.ready}
	st.Inference = freightcastv1alpha1.ReplicaStatus{Replicas: obs.inference.replicas, ReadyReplicas: obs.inference.ready}

	c := newConditionSetter(p.Status.Conditions, p.Generation, now)
	st.Queue = queueStatus(p.Status.Queue, obs.queue)
	setQueueReady(c, obs.queue)
	// The model gates the data-plane pods: until it exists and has loaded, they are not created;
	// workers that exist keep their last model, but a missing or failing model is what the user
	// must know about the pool.
	model := pipelineModelProblem(p, obs.model)
	setStageCondition(c, freightcastv1alpha1.ConditionIngestionReady, obs.ingestion, model, problem{}, false)
	minZero := p.Spec.Inference.MinReplicas != nil && *p.Spec.Inference.MinReplicas == 0
	scaledToZero := minZero && obs.inference.exists && obs.inference.desired == 0 && obs.inference.replicas == 0
	setStageCondition(c, freightcastv1alpha1.ConditionInferenceReady, obs.inference, model, inferenceBlocked(p, obs.model, model), scaledToZero)
	setFeaturesValid(c, obs.features, len(p.Spec.Features))
	setReportingConditions(c, p, obs.reportingSpec, obs.reporting)
	setDegraded(c, pipelineProblems(obs, st.Stream)...)
	setProgressing(c, c.isTrue(freightcastv1alpha1.ConditionDegraded), firstProblem(rollingOut(obs.ingestion, obs.inference), queueConverging(c)), pipelineSettled(c, obs))
	var blockers []problem
	for _, cond := range notTrue(c, freightcastv1alpha1.ConditionFeaturesValid, freightcastv1alpha1.ConditionReportingValid, freightcastv1alpha1.ConditionQueueReady, freightcastv1alpha1.ConditionInferenceReady, freightcastv1alpha1.ConditionIngestionReady) {
		blockers = append(blockers, problem{cond.Reason, cond.Type + ": " + cond.Message})
	}
	setReady(c, problem{freightcastv1alpha1.ReasonPipelineReady, "accepting events at " + st.IngestionEndpoint}, blockers...)
	setRouteCondition(c, obs.route)
	st.Conditions = c.conditions
	return st
}

// setStageCondition sets a per-stage condition (IngestionReady, InferenceReady) from its
// Deployment's rollout r: the stage can do its work as soon as one pod is ready. waiting is why
// a Deployment not created yet waits (the model), blocked what makes an existing one False
// anyway; scaledToZero that no pod is wanted on purpose.
func setStageCondition(c *conditionSetter, condType string, r rollout, waiting, blocked problem, scaledToZero bool) {
	switch {
	case !r.exists && !waiting.none():
		c.set(condType, metav1.ConditionFalse, waiting.reason, waiting.message)
	case !r.exists:
		c.set(condType, metav1.ConditionFalse, freightcastv1alpha1.ReasonReconciling, r.message)
	case !blocked.none():
		c.set(condType, metav1.ConditionFalse, blocked.reason, blocked.message)
	case scaledToZero:
		c.set(condType, metav1.ConditionTrue, freightcastv1alpha1.ReasonScaledToZero, "no worker is needed: the queue is empty and minReplicas is 0")
	case r.ready > 0:
		c.set(condType, metav1.ConditionTrue, freightcastv1alpha1.ReasonAvailable, fmt.Sprintf("%d of %d pods ready", r.ready, r.desired))
	case r.stalled:
		c.set(condType, metav1.ConditionFalse, freightcastv1alpha1.ReasonProgressDeadlineExceeded, r.message)
	default:
		c.set(condType, metav1.ConditionFalse, freightcastv1alpha1.ReasonUnavailable, r.message)
	}
}

// pipelineModelProblem is why the pipeline's model keeps its pods from running: it does not
// exist, or it has not loaded its current spec. The zero problem when it has.
func pipelineModelProblem(p *freightcastv1alpha1.FreightPipeline, model *freightcastv1alpha1.PredictionModel) problem {
	if model == nil {
		return problem{freightcastv1alpha1.ReasonModelNotFound, fmt.Sprintf("PredictionModel %s not found in namespace %s", p.Spec.ModelRef.Name, p.Namespace)}
	}
	if cannot := modelCannotLoad(model); !cannot.none() {
		return cannot
	}
	if undeclared := runtimeFeaturesUndeclared(model); !undeclared.none() {
		return undeclared
	}
	if ok, why := modelLoaded(model); !ok {
		return problem{freightcastv1alpha1.ReasonModelNotReady, why}
	}
	return problem{}
}

// runtimeFeaturesUndeclared is the problem of a pipeline over a model another runtime serves
// that does not name its features in spec.features: the pipeline's pods map events by those
// names, and read no model file to learn them. Only the spec changes that: the pipeline is
// Degraded, and its pods are not created. The zero problem otherwise.
func runtimeFeaturesUndeclared(model *freightcastv1alpha1.PredictionModel) problem {
	if model == nil || model.Spec.Runtime == nil {
		return problem{}
	}
	if len(model.Spec.Features) == 0 || slices.ContainsFunc(model.Spec.Inputs, func(in freightcastv1alpha1.InputSpec) bool { return len(in.Features) > 0 }) {
		return problem{freightcastv1alpha1.ReasonModelFeaturesUndeclared, fmt.Sprintf("PredictionModel %s is served by spec.runtime: "+
			"a pipeline needs its input's feature names in spec.features (inputs[].features need the model file, which pipelines over another runtime do not read)", model.Name)}
	}
	return problem{}
}

// inferenceBlocked is what keeps the inference pool from scoring: the model's problem, or, for a
// pool that scores through the model's Service, a model with no ready serving pod.
func inferenceBlocked(p *freightcastv1alpha1.FreightPipeline, model *freightcastv1alpha1.PredictionModel, modelProblem problem) problem {
	if model == nil || !spec.RemoteScoring(p, model) || model.Status.ReadyReplicas > 0 {
		return modelProblem
	}
	if modelProblem.reason != "" && modelProblem.reason != freightcastv1alpha1.ReasonModelNotReady {
		return modelProblem
	}
	return problem{freightcastv1alpha1.ReasonModelUnavailable, fmt.Sprintf("the pool scores through PredictionModel %s, which has no ready serving pod: the events wait in the queue", model.Name)}
}

// modelCannotLoad is the problem of a pipeline whose model reports, for its current spec, that
// its model file cannot load (refused by the operator, or a pod exited for it): waiting will not
// fix it, so the pipeline is Degraded, with the model's reason and message. The zero problem
// otherwise. The pipeline's pods keep what they run (the last good revision, if any), and its
// events wait in the queue.
func modelCannotLoad(model *freightcastv1alpha1.PredictionModel) problem {
	if model == nil {
		return problem{}
	}
	c := meta.FindStatusCondition(model.Status.Conditions, freightcastv1alpha1.ConditionModelLoaded)
	if c == nil || c.Status == metav1.ConditionTrue || c.ObservedGeneration != model.Generation {
		return problem{}
	}
	switch c.Reason {
	case freightcastv1alpha1.ReasonUnsupportedModel, freightcastv1alpha1.ReasonInvalidModel, freightcastv1alpha1.ReasonModelLoadFailed:
		return problem{c.Reason, fmt.Sprintf("PredictionModel %s cannot load its model (%s): %s", model.Name, c.Reason, c.Message)}
	}
	return problem{}
}

// pipelineProblems are what may degrade a pipeline, most important first.
func pipelineProblems(obs pipelineObservation, stream string) []problem {
	var out []problem
	if obs.features.err != nil {
		field := "spec.features: "
		if obs.features.reason == freightcastv1alpha1.ReasonInvalidLookupTable {
			field = "spec.lookupTables: "
		}
		out = append(out, problem{obs.features.reason, field + obs.features.err.Error()})
	}
	if obs.applyErr != nil {
		out = append(out, problem{freightcastv1alpha1.ReasonApplyFailed, obs.applyErr.Error()})
	}
	if obs.queue.err != nil {
		if p := queueProblem(obs.queue.err, obs.queue.replicas); queueFailed(p.reason) {
			out = append(out, p)
		}
	}
	out = append(out, modelCannotLoad(obs.model), runtimeFeaturesUndeclared(obs.model))
	for _, r := range []rollout{obs.ingestion, obs.inference} {
		if r.stalled {
			out = append(out, problem{freightcastv1alpha1.ReasonProgressDeadlineExceeded, r.message})
		}
	}
	if obs.queueStall != nil {
		out = append(out, problem{freightcastv1alpha1.ReasonQueueStalled,
			fmt.Sprintf("events have waited in stream %s since %s with no ready inference pod to consume them, while the autoscaler wants some: the inference pods do not start or do not pass readiness",
				stream, obs.queueStall.since.UTC().Format(time.RFC3339))})
	}
	return out
}

// queueConverging is QueueReady's when the streams' replicas are changing, the zero problem
// otherwise.
func queueConverging(c *conditionSetter) problem {
	if q := c.get(freightcastv1alpha1.ConditionQueueReady); q != nil && q.Reason == freightcastv1alpha1.ReasonQueueConverging {
		return problem{q.Reason, q.Message}
	}
	return problem{}
}

// rollingOut is the first of rollouts under way, the zero problem when none is.
func rollingOut(rollouts ...rollout) problem {
	for _, r := range rollouts {
		if r.exists && !r.complete {
			return problem{freightcastv1alpha1.ReasonRollingOut, r.message}
		}
	}
	return problem{}
}

// pipelineSettled is Progressing when nothing rolls out: waiting while a Deployment does not
// exist yet, reconciled otherwise.
func pipelineSettled(c *conditionSetter, obs pipelineObservation) problem {
	if !obs.ingestion.exists || !obs.inference.exists {
		message := ""
		if waiting := notTrue(c, freightcastv1alpha1.ConditionIngestionReady, freightcastv1alpha1.ConditionInferenceReady); len(waiting) > 0 {
			message = waiting[0].Message
		}
		return problem{freightcastv1alpha1.ReasonReconciling, "waiting: " + message}
	}
	return problem{freightcastv1alpha1.ReasonReconciled, "the pipeline's pods run the current spec"}
}

// notTrue is the conditions of types that are set and not True, in the order of types.
func notTrue(c *conditionSetter, types ...string) []*metav1.Condition {
	var out []*metav1.Condition
	for _, t := range types {
		if cond := c.get(t); cond != nil && cond.Status != metav1.ConditionTrue {
			out = append(out, cond)
		}
	}
	return out
}
