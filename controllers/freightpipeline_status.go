package controllers

import (
	"errors"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	freightcastv1alpha1 "github.com/freightcast/freightcast/api/v1alpha1"
	"github.com/freightcast/freightcast/internal/queue"
	"github.com/freightcast/freightcast/internal/spec"
)

// pipelineObservation is what one reconcile of a FreightPipeline learned.
type pipelineObservation struct {
	// route is what became of spec.ingestion.route.
	route routeObservation
	// model is the referenced PredictionModel, nil when it does not exist.
	model *freightcastv1alpha1.PredictionModel
	// natsURL is the server the queue lives on ("" when none is configured).
	natsURL string
	// queueErr is why provisioning failed; nil when it succeeded.
	queueErr error
	// ingestion and inference are the Deployments' rollouts.
	ingestion, inference rollout
	// inferenceApplied is true when this reconcile wrote the inference Deployment: created it,
	// or changed it.
	inferenceApplied bool
	// applyErr is the first error writing a child.
	applyErr error
	// queueStall is a backlog that no ready inference pod has consumed for longer than the
	// stall threshold; nil when there is none.
	queueStall *queueStall
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

// computePipelineStatus derives the whole status from the observation; it is pure.
func computePipelineStatus(p *freightcastv1alpha1.FreightPipeline, obs pipelineObservation, now time.Time) freightcastv1alpha1.FreightPipelineStatus {
	st := p.Status
	st.ObservedGeneration = p.Generation
	st.IngestionEndpoint = ingestionEndpoint(p)
	st.Stream = queue.TopologyFor(p.Namespace, p.Name).Stream
	st.Ingestion = freightcastv1alpha1.ReplicaStatus{Replicas: obs.ingestion.replicas, ReadyReplicas: obs.ingestion.ready}
	st.Inference = freightcastv1alpha1.ReplicaStatus{Replicas: obs.inference.replicas, ReadyReplicas: obs.inference.ready}
	// status.autoscaling belongs to the autoscaler; it is carried over unchanged.

	c := newConditionSetter(p.Status.Conditions, p.Generation, now)
	const (
		ready     = freightcastv1alpha1.ConditionReady
		degraded  = freightcastv1alpha1.ConditionDegraded
		progress  = freightcastv1alpha1.ConditionProgressing
		ingestion = freightcastv1alpha1.ConditionIngestionReady
		queueCond = freightcastv1alpha1.ConditionQueueReady
		inference = freightcastv1alpha1.ConditionInferenceReady
	)

	// QueueReady.
	switch {
	case obs.natsURL == "":
		c.set(queueCond, metav1.ConditionFalse, freightcastv1alpha1.ReasonQueueNotConfigured,
			"spec.queue.url is empty and the operator has no default NATS URL (--default-nats-url)")
	case errors.Is(obs.queueErr, queue.ErrUnreachable):
		c.set(queueCond, metav1.ConditionFalse, freightcastv1alpha1.ReasonQueueUnreachable, obs.queueErr.Error())
	case obs.queueErr != nil:
		c.set(queueCond, metav1.ConditionFalse, freightcastv1alpha1.ReasonQueueProvisionFailed, obs.queueErr.Error())
	default:
		c.set(queueCond, metav1.ConditionTrue, freightcastv1alpha1.ReasonQueueProvisioned,
			fmt.Sprintf("stream %s and consumer ready on %s", st.Stream, obs.natsURL))
	}

	// The model gates the data-plane pods: until it exists and has loaded, they are not created.
	modelReason, modelMessage := "", ""
	if obs.model == nil {
		modelReason = freightcastv1alpha1.ReasonModelNotFound
		modelMessage = fmt.Sprintf("PredictionModel %s not found in namespace %s", p.Spec.ModelRef.Name, p.Namespace)
	} else if ok, why := modelLoaded(obs.model); !ok {
		modelReason, modelMessage = freightcastv1alpha1.ReasonModelNotReady, why
	}

	// IngestionReady: it can accept events as soon as one pod is ready.
	setComponent := func(condType string, r rollout, scaledToZero bool) {
		switch {
		case !r.exists && modelReason != "":
			c.set(condType, metav1.ConditionFalse, modelReason, modelMessage)
		case !r.exists:
			c.set(condType, metav1.ConditionFalse, freightcastv1alpha1.ReasonReconciling, r.message)
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
	setComponent(ingestion, obs.ingestion, false)
	minZero := p.Spec.Inference.MinReplicas != nil && *p.Spec.Inference.MinReplicas == 0
	setComponent(inference, obs.inference, minZero && obs.inference.exists && obs.inference.desired == 0 && obs.inference.replicas == 0)
	if obs.inference.exists && modelReason != "" {
		// Workers that exist keep their last model, but a missing or failing model is what the
		// user must know about the pool.
		c.set(inference, metav1.ConditionFalse, modelReason, modelMessage)
	}

	// Degraded: what waiting alone will not fix.
	switch {
	case obs.applyErr != nil:
		c.set(degraded, metav1.ConditionTrue, freightcastv1alpha1.ReasonApplyFailed, obs.applyErr.Error())
	case obs.queueErr != nil && !errors.Is(obs.queueErr, queue.ErrUnreachable):
		c.set(degraded, metav1.ConditionTrue, freightcastv1alpha1.ReasonQueueProvisionFailed, obs.queueErr.Error())
	case obs.ingestion.stalled:
		c.set(degraded, metav1.ConditionTrue, freightcastv1alpha1.ReasonProgressDeadlineExceeded, obs.ingestion.message)
	case obs.inference.stalled:
		c.set(degraded, metav1.ConditionTrue, freightcastv1alpha1.ReasonProgressDeadlineExceeded, obs.inference.message)
	case obs.queueStall != nil:
		c.set(degraded, metav1.ConditionTrue, freightcastv1alpha1.ReasonQueueStalled,
			fmt.Sprintf("events have waited in stream %s since %s with no ready inference pod to consume them, while the autoscaler wants some: the inference pods do not start or do not pass readiness",
				st.Stream, obs.queueStall.since.UTC().Format(time.RFC3339)))
	default:
		c.set(degraded, metav1.ConditionFalse, freightcastv1alpha1.ReasonAsExpected, "")
	}

	// Progressing.
	switch {
	case c.isTrue(degraded):
		d := c.get(degraded)
		c.set(progress, metav1.ConditionFalse, d.Reason, "not progressing: "+d.Message)
	case obs.ingestion.exists && !obs.ingestion.complete:
		c.set(progress, metav1.ConditionTrue, freightcastv1alpha1.ReasonRollingOut, obs.ingestion.message)
	case obs.inference.exists && !obs.inference.complete:
		c.set(progress, metav1.ConditionTrue, freightcastv1alpha1.ReasonRollingOut, obs.inference.message)
	case !obs.ingestion.exists || !obs.inference.exists:
		c.set(progress, metav1.ConditionFalse, freightcastv1alpha1.ReasonReconciling, "waiting: "+firstNotReadyMessage(c, ingestion, inference))
	default:
		c.set(progress, metav1.ConditionFalse, freightcastv1alpha1.ReasonReconciled, "the pipeline's pods run the current spec")
	}

	// Ready.
	switch {
	case c.isTrue(degraded):
		d := c.get(degraded)
		c.set(ready, metav1.ConditionFalse, d.Reason, d.Message)
	case !c.isTrue(queueCond) || !c.isTrue(ingestion) || !c.isTrue(inference):
		first := firstNotReady(c, queueCond, inference, ingestion)
		c.set(ready, metav1.ConditionFalse, first.Reason, first.Type+": "+first.Message)
	default:
		c.set(ready, metav1.ConditionTrue, freightcastv1alpha1.ReasonPipelineReady, "accepting events at "+st.IngestionEndpoint)
	}
	setRouteCondition(c, obs.route)
	st.Conditions = c.conditions
	return st
}

func firstNotReady(c *conditionSetter, types ...string) *metav1.Condition {
	for _, t := range types {
		if !c.isTrue(t) {
			return c.get(t)
		}
	}
	return nil
}

func firstNotReadyMessage(c *conditionSetter, types ...string) string {
	if cond := firstNotReady(c, types...); cond != nil {
		return cond.Message
	}
	return ""
}
