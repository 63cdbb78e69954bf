package controllers

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	freightcastv1alpha1 "github.com/freightcast/freightcast/api/v1alpha1"
	"github.com/freightcast/freightcast/internal/queue"
)

// queueFinalizer holds a pipeline with deletionPolicy Delete until its streams, consumer and
// bucket are deleted from NATS, or until the operator gives up on them (see deleteQueue).
const queueFinalizer = "freightcast.io/queue"

// ingestionStopInterval is how soon a deletion looks again for ingestion pods still stopping.
const ingestionStopInterval = 2 * time.Second

// deletesQueue reports whether deleting p deletes its streams.
func deletesQueue(p *freightcastv1alpha1.FreightPipeline) bool {
	return p.Spec.Queue.DeletionPolicy != freightcastv1alpha1.QueueRetain
}

// ensureQueueFinalizer adds the finalizer to a pipeline whose streams go with it, and removes it
// from one whose policy became Retain.
func (r *FreightPipelineReconciler) ensureQueueFinalizer(ctx context.Context, s *pipelineScope) (ctrl.Result, error) {
	p := s.pipeline
	want := deletesQueue(p)
	if want == controllerutil.ContainsFinalizer(p, queueFinalizer) {
		return ctrl.Result{}, nil
	}
	patch := client.MergeFromWithOptions(p.DeepCopy(), client.MergeFromWithOptimisticLock{})
	if want {
		controllerutil.AddFinalizer(p, queueFinalizer)
	} else {
		controllerutil.RemoveFinalizer(p, queueFinalizer)
	}
	if err := r.Client.Patch(ctx, p, patch); err != nil {
		return ctrl.Result{}, fmt.Errorf("updating the finalizer %s: %w", queueFinalizer, err)
	}
	return ctrl.Result{}, nil
}

// deleteQueue is the deletion of a pipeline that holds the queue finalizer. With deletionPolicy
// Retain (changed since the finalizer was added) or no NATS configured, it lets the pipeline go
// at once. With Delete it stops ingestion first — its Deployment is deleted and its pods waited
// for, so that no event is accepted after the check — then deletes the streams, unless events
// wait for a prediction and pendingEventsOnDelete is Wait: then the inference pool (the
// autoscaler keeps sizing it) predicts them first, however long that takes, with QueueReady and
// an event saying so. Two cases cannot wedge the deletion: a namespace being deleted takes the
// inference pool too, so its pending events are left on NATS rather than waited for (never
// dropped without Drop); and a NATS that fails every attempt for the deletion timeout leaves the
// streams on NATS. Streams left behind show in freightcast_queue_orphaned_stream_reserved_bytes.
func (r *FreightPipelineReconciler) deleteQueue(ctx context.Context, s *pipelineScope) (ctrl.Result, error) {
	p := s.pipeline
	if !controllerutil.ContainsFinalizer(p, queueFinalizer) {
		s.released = true
		r.forget(client.ObjectKeyFromObject(p))
		return ctrl.Result{}, nil
	}
	topology := queue.TopologyFor(p.Namespace, p.Name)
	q := &s.obs.queue
	q.natsURL, q.stream = pipelineNATSURL(p, r.Options), topology.Stream
	switch {
	case q.natsURL == "":
		return ctrl.Result{}, r.release(ctx, s)
	case !deletesQueue(p):
		r.Recorder.Eventf(p, nil, corev1.EventTypeNormal, freightcastv1alpha1.EventReasonQueueRetained, "RetainQueue",
			"deletionPolicy is Retain: streams %s, %s and %s stay on %s for a pipeline of the same name to adopt", topology.Stream, topology.OutputStream, topology.BucketStream(), q.natsURL)
		return ctrl.Result{}, r.release(ctx, s)
	}
	d := &queueDeletion{}
	q.deletion = d
	stopping, err := r.stopIngestion(ctx, p)
	if err != nil {
		return ctrl.Result{}, err
	}
	if stopping {
		d.stoppingIngestion = true
		return ctrl.Result{RequeueAfter: ingestionStopInterval}, nil
	}
	deleted, err := r.deleteStreams(ctx, q.natsURL, topology, p.Spec.Queue.PendingEventsOnDelete == freightcastv1alpha1.PendingEventsDrop)
	var unacked *queue.UnackedEventsError
	switch {
	case err == nil:
		r.Recorder.Eventf(p, nil, corev1.EventTypeNormal, freightcastv1alpha1.EventReasonQueueDeleted, "DeleteQueue",
			"Deleted %s from %s, giving back their reserved storage; %d unpredicted event(s) dropped", orNone(deleted.Streams), q.natsURL, deleted.DroppedEvents)
		return ctrl.Result{}, r.release(ctx, s)
	case errors.As(err, &unacked):
		r.failures.clear(client.ObjectKeyFromObject(p))
		return r.waitForPendingEvents(ctx, s, unacked)
	}
	q.err = err
	key := client.ObjectKeyFromObject(p)
	d.retryUntil = r.failures.since(key, r.Clock.Now()).Add(cmp.Or(r.Options.QueueDeletionTimeout, defaultQueueDeletionTimeout))
	if left := d.retryUntil.Sub(r.Clock.Now()); left > 0 {
		return ctrl.Result{RequeueAfter: min(queueRetryInterval, left)}, nil
	}
	r.Recorder.Eventf(p, nil, corev1.EventTypeWarning, freightcastv1alpha1.EventReasonQueueRetained, "DeleteQueue",
		"Gave up deleting streams %s, %s and %s after %s of failures (%v): they stay on %s with their reserved storage until removed by hand (docs/operate.md#streams-without-a-pipeline)",
		topology.Stream, topology.OutputStream, topology.BucketStream(), cmp.Or(r.Options.QueueDeletionTimeout, defaultQueueDeletionTimeout), truncateNote(err.Error()), q.natsURL)
	return ctrl.Result{}, r.release(ctx, s)
}

// deleteStreams deletes the pipeline's streams on the server at natsURL.
func (r *FreightPipelineReconciler) deleteStreams(ctx context.Context, natsURL string, t queue.Topology, dropPending bool) (queue.Deleted, error) {
	js, err := r.Queue.JetStream(natsURL)
	if err != nil {
		return queue.Deleted{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, queueCallTimeout)
	defer cancel()
	return queue.Delete(ctx, js, t, dropPending)
}

// waitForPendingEvents holds the deletion while events wait for the inference pool, or lets the
// pipeline go, keeping the streams, when nothing will predict them: the namespace is being
// deleted, or the pool is gone (a foreground deletion deletes it before its owner).
func (r *FreightPipelineReconciler) waitForPendingEvents(ctx context.Context, s *pipelineScope, unacked *queue.UnackedEventsError) (ctrl.Result, error) {
	p, q := s.pipeline, &s.obs.queue
	ending, err := r.namespaceEnding(ctx, p.Namespace)
	if err != nil {
		return ctrl.Result{}, err
	}
	pool := &appsv1.Deployment{}
	err = r.Client.Get(ctx, types.NamespacedName{Namespace: p.Namespace, Name: inferenceName(p)}, pool)
	if client.IgnoreNotFound(err) != nil {
		return ctrl.Result{}, fmt.Errorf("reading the inference pool: %w", err)
	}
	poolGone := apierrors.IsNotFound(err) || !pool.DeletionTimestamp.IsZero()
	if ending || poolGone {
		why := fmt.Sprintf("namespace %s is being deleted", p.Namespace)
		if !ending {
			why = "the inference pool is gone (a foreground deletion, as Argo CD's, takes it first)"
		}
		r.Recorder.Eventf(p, nil, corev1.EventTypeWarning, freightcastv1alpha1.EventReasonQueueRetained, "DeleteQueue",
			"Stream %s holds %d unpredicted event(s), pendingEventsOnDelete is Wait, and %s, so nothing will predict them: the streams stay on %s (docs/operate.md#streams-without-a-pipeline)",
			q.stream, unacked.Events, why, q.natsURL)
		return ctrl.Result{}, r.release(ctx, s)
	}
	q.deletion.pending = unacked.Events
	if c := meta.FindStatusCondition(p.Status.Conditions, freightcastv1alpha1.ConditionQueueReady); c == nil || c.Reason != freightcastv1alpha1.ReasonPendingEvents {
		r.Recorder.Eventf(p, nil, corev1.EventTypeWarning, freightcastv1alpha1.EventReasonQueueDeletionWaiting, "DeleteQueue",
			"Stream %s holds %d event(s) without a prediction: its streams are deleted once they are predicted (pendingEventsOnDelete: Wait); set Drop to delete them now, or deletionPolicy Retain to keep them",
			q.stream, unacked.Events)
	}
	return ctrl.Result{RequeueAfter: queueConvergeInterval}, nil
}

// stopIngestion deletes the ingestion Deployment and reports whether its pods still run.
func (r *FreightPipelineReconciler) stopIngestion(ctx context.Context, p *freightcastv1alpha1.FreightPipeline) (bool, error) {
	d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: p.Namespace, Name: ingestionName(p)}}
	if err := r.Client.Delete(ctx, d, client.PropagationPolicy(metav1.DeletePropagationBackground)); client.IgnoreNotFound(err) != nil {
		return false, fmt.Errorf("deleting the ingestion Deployment: %w", err)
	}
	var pods corev1.PodList
	if err := r.APIReader.List(ctx, &pods, client.InNamespace(p.Namespace), client.MatchingLabels(pipelineSelector(p, componentIngestion))); err != nil {
		return false, fmt.Errorf("listing the ingestion pods: %w", err)
	}
	return len(pods.Items) > 0, nil
}

// namespaceEnding reports whether namespace is being deleted (or gone).
func (r *FreightPipelineReconciler) namespaceEnding(ctx context.Context, namespace string) (bool, error) {
	ns := &corev1.Namespace{}
	err := r.APIReader.Get(ctx, types.NamespacedName{Name: namespace}, ns)
	switch {
	case apierrors.IsNotFound(err):
		return true, nil
	case err != nil:
		return false, fmt.Errorf("reading namespace %s: %w", namespace, err)
	}
	return !ns.DeletionTimestamp.IsZero() || ns.Status.Phase == corev1.NamespaceTerminating, nil
}

// release removes the queue finalizer: the pipeline may go.
func (r *FreightPipelineReconciler) release(ctx context.Context, s *pipelineScope) error {
	p := s.pipeline
	patch := client.MergeFromWithOptions(p.DeepCopy(), client.MergeFromWithOptimisticLock{})
	controllerutil.RemoveFinalizer(p, queueFinalizer)
	if err := r.Client.Patch(ctx, p, patch); client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("removing the finalizer %s: %w", queueFinalizer, err)
	}
	s.released = true
	r.forget(client.ObjectKeyFromObject(p))
	return nil
}

// deletingPipelineStatus is the status of a pipeline whose streams are being deleted: QueueReady
// says where the deletion stands, and Ready is False with its reason. The rest is left as it
// was: the children are going with the pipeline.
func deletingPipelineStatus(p *freightcastv1alpha1.FreightPipeline, obs pipelineObservation, now time.Time) freightcastv1alpha1.FreightPipelineStatus {
	st := *p.Status.DeepCopy()
	st.ObservedGeneration = p.Generation
	c := newConditionSetter(st.Conditions, p.Generation, now)
	setQueueReady(c, obs.queue)
	q := c.get(freightcastv1alpha1.ConditionQueueReady)
	c.set(freightcastv1alpha1.ConditionReady, metav1.ConditionFalse, q.Reason, "the pipeline is being deleted: "+strings.TrimPrefix(q.Message, "deleting: "))
	st.Conditions = c.conditions
	return st
}

// failureClock remembers since when each pipeline's stream deletion has failed without a break,
// for the deletion timeout. It lives in memory: a new leader starts the count again, which
// only ever makes the wait longer.
type failureClock struct {
	mu    sync.Mutex
	start map[types.NamespacedName]time.Time
}

// since returns when key's failures began, now when this is the first.
func (f *failureClock) since(key types.NamespacedName, now time.Time) time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.start == nil {
		f.start = map[types.NamespacedName]time.Time{}
	}
	if t, ok := f.start[key]; ok {
		return t
	}
	f.start[key] = now
	return now
}

func (f *failureClock) clear(key types.NamespacedName) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.start, key)
}
