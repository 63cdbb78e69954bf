package controllers

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"

	freightcastv1alpha1 "github.com/freightcast/freightcast/api/v1alpha1"
	"github.com/freightcast/freightcast/internal/queue"
	"github.com/freightcast/freightcast/internal/spec"
)

// How soon the queue is looked at again: its leader and replicas change without any Kubernetes
// event, so status.queue is refreshed on a timer, sooner while it is not settled.
const (
	queueHealthInterval   = 15 * time.Second
	queueConvergeInterval = 5 * time.Second
)

// queueObservation is what the queue phase learned of the pipeline's streams.
type queueObservation struct {
	// natsURL is the server the queue lives on ("" when none is configured).
	natsURL string
	// stream is the events stream's name.
	stream string
	// err is why provisioning, or reading the stream's health, failed; nil when both worked.
	err error
	// replicas is what the spec asks for (spec.queue.replicas or the operator's default).
	replicas int
	// converging: a change of replicas is under way (the consumer could not follow yet, or
	// the stream has not reached the replicas asked for).
	converging bool
	// health is the events stream's replication; nil when it could not be read.
	health *queue.StreamHealth
	// reserved is what the pipeline's streams reserve across the servers.
	reserved int64
	// deletion is set while a pipeline with deletionPolicy Delete is being deleted.
	deletion *queueDeletion
}

// queueDeletion is where the deletion of a pipeline's streams stands.
type queueDeletion struct {
	// stoppingIngestion: ingestion pods still run; nothing is checked until they are gone, so
	// that no event is accepted after the check.
	stoppingIngestion bool
	// pending is the events that wait for a prediction, with pendingEventsOnDelete Wait.
	pending uint64
	// retryUntil is when a failing deletion gives up and leaves the streams on NATS.
	retryUntil time.Time
}

// provisionQueue makes the stream, consumer and bucket exist with the spec's replicas, and reads
// the stream's replication for status.queue. Its failures are observations for QueueReady, never
// reconcile errors: the children are still kept in step meanwhile, and the server is tried again
// after queueRetryInterval.
func (r *FreightPipelineReconciler) provisionQueue(ctx context.Context, s *pipelineScope) (ctrl.Result, error) {
	q := &s.obs.queue
	q.natsURL = pipelineNATSURL(s.pipeline, r.Options)
	q.stream = queue.TopologyFor(s.pipeline.Namespace, s.pipeline.Name).Stream
	if q.natsURL == "" {
		return ctrl.Result{}, nil
	}
	want := spec.Queue(s.pipeline, r.Options.DefaultQueueReplicas)
	q.replicas, q.reserved = max(want.Replicas, 1), want.Reservation()
	if q.err = r.provision(ctx, s, want); q.err != nil {
		return ctrl.Result{RequeueAfter: queueRetryInterval}, nil
	}
	if q.converging || q.health == nil || len(q.health.Lagging()) > 0 {
		return ctrl.Result{RequeueAfter: queueConvergeInterval}, nil
	}
	return ctrl.Result{RequeueAfter: queueHealthInterval}, nil
}

func (r *FreightPipelineReconciler) provision(ctx context.Context, s *pipelineScope, want queue.Spec) error {
	q := &s.obs.queue
	js, err := r.Queue.JetStream(q.natsURL)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, queueCallTimeout)
	defer cancel()
	var opts []queue.Option
	if s.pipeline.Spec.Queue.URL == "" {
		// What the operator knows of the default servers' stores; a pipeline's own server is
		// the server's to judge.
		opts = append(opts, queue.WithStoreLimit(r.Options.NATSStore))
	}
	res, err := queue.Provision(ctx, js, want, opts...)
	if err != nil {
		return err
	}
	r.recordProvisioned(s.pipeline, q, res)
	q.converging = res.Converging
	health, err := queue.ReadStreamHealth(ctx, js, q.stream)
	if err != nil {
		return err
	}
	q.health = &health
	q.converging = q.converging || health.Replicas != q.replicas
	return nil
}

// recordProvisioned tells what Provision changed: streams created, adopted or rescaled.
func (r *FreightPipelineReconciler) recordProvisioned(p *freightcastv1alpha1.FreightPipeline, q *queueObservation, res queue.Result) {
	if res.EventsStreamExisted && p.Status.Queue == nil && !meta.IsStatusConditionTrue(p.Status.Conditions, freightcastv1alpha1.ConditionQueueReady) {
		r.Recorder.Eventf(p, nil, corev1.EventTypeNormal, freightcastv1alpha1.EventReasonQueueAdopted, "AdoptQueue",
			"Adopted the retained stream %s on %s with the %d event(s) it holds", q.stream, q.natsURL, res.Events)
	}
	for _, rs := range res.Rescaled {
		r.Recorder.Eventf(p, nil, corev1.EventTypeNormal, freightcastv1alpha1.EventReasonQueueRescaled, "RescaleQueue",
			"Stream %s scaled from %d to %d replica(s) in place", rs.Stream, rs.From, rs.To)
	}
	if len(res.Created) > 0 {
		r.Recorder.Eventf(p, nil, corev1.EventTypeNormal, "QueueProvisioned", "ProvisionQueue",
			"Provisioned %s on %s (%d replica(s), %s reserved)", strings.Join(res.Created, ", "), q.natsURL, q.replicas, queue.FormatBytes(q.reserved))
	}
}

// queueStatus is status.queue from the observation: the stream's replication as its leader
// reports it. A stream without quorum has no leader; a server that did not answer leaves what
// was known before.
func queueStatus(prev *freightcastv1alpha1.QueueStatus, q queueObservation) *freightcastv1alpha1.QueueStatus {
	switch {
	case q.health != nil:
		st := &freightcastv1alpha1.QueueStatus{Replicas: int32(q.health.Replicas), Leader: q.health.Leader, ReservedBytes: q.reserved}
		lagging := q.health.Lagging()
		st.LaggingReplicas = lagging[:min(len(lagging), 5)]
		return st
	case errors.Is(q.err, queue.ErrNoQuorum) && prev != nil:
		st := prev.DeepCopy()
		st.Leader = ""
		return st
	}
	return prev
}

// setQueueReady sets QueueReady from what the queue phase (or the deletion) observed.
func setQueueReady(c *conditionSetter, q queueObservation) {
	const queueReady = freightcastv1alpha1.ConditionQueueReady
	if d := q.deletion; d != nil {
		setQueueDeleting(c, q, d)
		return
	}
	if q.natsURL == "" {
		c.set(queueReady, metav1.ConditionFalse, freightcastv1alpha1.ReasonQueueNotConfigured,
			"spec.queue.url is empty and the operator has no default NATS URL (--default-nats-url)")
		return
	}
	if q.err != nil {
		p := queueProblem(q.err, q.replicas)
		c.set(queueReady, metav1.ConditionFalse, p.reason, p.message)
		return
	}
	where := fmt.Sprintf("stream %s on %s", q.stream, q.natsURL)
	h := q.health
	switch {
	case h == nil:
		c.set(queueReady, metav1.ConditionTrue, freightcastv1alpha1.ReasonQueueProvisioned, where+" and its consumer ready")
	case q.converging:
		c.set(queueReady, metav1.ConditionTrue, freightcastv1alpha1.ReasonQueueConverging,
			fmt.Sprintf("%s accepts events; its replicas are changing from %d to %d (leader %s, catching up: %s)",
				where, h.Replicas, q.replicas, h.Leader, orNone(h.Lagging())))
	case len(h.Lagging()) > 0:
		c.set(queueReady, metav1.ConditionTrue, freightcastv1alpha1.ReasonQueueProvisioned,
			fmt.Sprintf("%s ready at %d replica(s), led by %s; behind or offline: %s", where, h.Replicas, h.Leader, strings.Join(h.Lagging(), ", ")))
	default:
		c.set(queueReady, metav1.ConditionTrue, freightcastv1alpha1.ReasonQueueProvisioned,
			fmt.Sprintf("%s and its consumer ready at %d replica(s), led by %s", where, h.Replicas, h.Leader))
	}
}

// queueProblem is the QueueReady reason and message of a queue that could not be provisioned or
// read.
func queueProblem(err error, replicas int) problem {
	switch {
	case errors.Is(err, queue.ErrInsufficientStorage):
		return problem{freightcastv1alpha1.ReasonInsufficientStorage, err.Error() + "; nothing of the pipeline was created and ingestion answers 503 until it fits"}
	case errors.Is(err, queue.ErrNotEnoughServers):
		return problem{freightcastv1alpha1.ReasonNotEnoughServers,
			fmt.Sprintf("spec.queue.replicas (or the operator's --default-queue-replicas) asks for %d servers, more than the NATS cluster offers: %v", replicas, err)}
	case errors.Is(err, queue.ErrNoQuorum):
		return problem{freightcastv1alpha1.ReasonNoQuorum,
			fmt.Sprintf("the stream has no leader: fewer than a majority of its %d replicas' servers are up, or they are electing one; ingestion answers 503 meanwhile: %v", replicas, err)}
	case errors.Is(err, queue.ErrUnreachable):
		return problem{freightcastv1alpha1.ReasonQueueUnreachable, err.Error()}
	}
	return problem{freightcastv1alpha1.ReasonQueueProvisionFailed, err.Error()}
}

// queueFailed reports whether a queue problem is one that waiting alone may not fix (Degraded).
func queueFailed(reason string) bool {
	switch reason {
	case freightcastv1alpha1.ReasonInsufficientStorage, freightcastv1alpha1.ReasonNotEnoughServers, freightcastv1alpha1.ReasonQueueProvisionFailed:
		return true
	}
	return false
}

// setQueueDeleting sets QueueReady while a pipeline with deletionPolicy Delete is deleted.
func setQueueDeleting(c *conditionSetter, q queueObservation, d *queueDeletion) {
	const queueReady = freightcastv1alpha1.ConditionQueueReady
	switch {
	case d.stoppingIngestion:
		c.set(queueReady, metav1.ConditionFalse, freightcastv1alpha1.ReasonReconciling,
			fmt.Sprintf("deleting: waiting for the ingestion pods to stop before stream %s is checked for pending events and deleted", q.stream))
	case d.pending > 0:
		msg := fmt.Sprintf("deleting: stream %s still holds %d event(s) without a prediction, and spec.queue.pendingEventsOnDelete is Wait: the streams are deleted once the inference pool has predicted them", q.stream, d.pending)
		c.set(queueReady, metav1.ConditionFalse, freightcastv1alpha1.ReasonPendingEvents,
			msg+". To finish now: set pendingEventsOnDelete: Drop to delete them, or deletionPolicy: Retain to keep the streams on NATS")
	case q.err != nil:
		p := queueProblem(q.err, q.replicas)
		reason := p.reason
		if reason == freightcastv1alpha1.ReasonQueueProvisionFailed {
			reason = freightcastv1alpha1.ReasonQueueDeletionFailed
		}
		c.set(queueReady, metav1.ConditionFalse, reason,
			fmt.Sprintf("deleting stream %s: %s; retried until %s, then the streams are left on NATS (see docs/operate.md#streams-without-a-pipeline)",
				q.stream, p.message, d.retryUntil.UTC().Format(time.RFC3339)))
	default:
		c.set(queueReady, metav1.ConditionFalse, freightcastv1alpha1.ReasonReconciling, "deleting stream "+q.stream)
	}
}

func orNone(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}
