package controllers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	appsv1ac "k8s.io/client-go/applyconfigurations/apps/v1"
	"k8s.io/client-go/tools/events"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	freightcastv1alpha1 "github.com/freightcast/freightcast/api/v1alpha1"
	"github.com/freightcast/freightcast/internal/autoscale"
	"github.com/freightcast/freightcast/internal/metrics"
	"github.com/freightcast/freightcast/internal/queue"
	"github.com/freightcast/freightcast/internal/scaler"
	"github.com/freightcast/freightcast/internal/spec"
)

// AutoscalerFieldOwner is the field manager of the autoscaler: it owns status.autoscaling of
// every FreightPipeline (by server-side apply) and spec.replicas of every inference pool (handed
// over to it when the pool is created, then written through the scale subresource), and nothing
// else.
const AutoscalerFieldOwner = "freightcast-autoscaler"

// statusRefresh is how often a changing queue depth alone is written to status: the gauge
// freightcast_queue_depth follows every sample, the API server gets one write per pipeline per
// refresh at most, unless a decision changes.
const statusRefresh = 10 * time.Second

// AutoscalerReconciler sizes a FreightPipeline's inference pool from its queue depth. Each
// Reconcile takes one sample of one pipeline — one consumer-info request, a decision of the
// pipeline's recommender, a write of the pool's scale subresource when the size changes — and asks
// to come back after the pipeline's poll interval. The workqueue so does the scheduling: one
// sample of a pipeline at a time, at most Concurrency samples at once, only on the leader, and a
// spec change or the pool's creation samples at once. The applied Deployment never carries
// replicas, so a GitOps tool never fights the autoscaler for them.
//
// What a sample decides is reported in status.autoscaling, which the autoscaler owns through
// server-side apply with AutoscalerFieldOwner; the pipeline reconciler reads it from there. The
// recommenders live in memory, one per pipeline: a new leader starts new ones (see
// docs/autoscaling.md for what that keeps and what it forgets).
type AutoscalerReconciler struct {
	Client client.Client
	// APIReader reads around the cache: a status is written only onto the object it was
	// computed for (see sameObject).
	APIReader client.Reader
	Queue     JetStreamConnector
	Recorder  events.EventRecorder
	Clock     clock.PassiveClock
	Metrics   *metrics.Autoscaling
	Options   Options
	// Concurrency bounds the samples in flight at once: enough that a slow NATS server does not
	// delay the other pipelines' samples, few enough not to flood it.
	Concurrency int

	mu        sync.Mutex
	pipelines map[types.NamespacedName]*scaledPipeline
}

var _ reconcile.Reconciler = (*AutoscalerReconciler)(nil)

// scaledPipeline is what the autoscaler keeps in memory of one pipeline between samples.
type scaledPipeline struct {
	// generation and natsURL are what sampler was made for; a change makes a new one.
	generation int64
	natsURL    string
	interval   time.Duration
	sampler    *scaler.Sampler
	// due is when the next sample is due, to keep the cadence and measure lateness.
	due time.Time
	// written is the last status.autoscaling written, at writtenAt.
	written   *freightcastv1alpha1.AutoscalingStatus
	writtenAt time.Time
}

// +kubebuilder:rbac:groups=freightcast.io,resources=freightpipelines,verbs=get;list;watch
// +kubebuilder:rbac:groups=freightcast.io,resources=freightpipelines/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=apps,resources=deployments,verbs=get;list;watch
// +kubebuilder:rbac:groups=apps,resources=deployments/scale,verbs=get;update;patch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconcile samples one pipeline's queue and sizes its inference pool.
func (a *AutoscalerReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	p := &freightcastv1alpha1.FreightPipeline{}
	if err := a.Client.Get(ctx, req.NamespacedName, p); err != nil {
		if apierrors.IsNotFound(err) {
			a.forget(req.NamespacedName)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !p.DeletionTimestamp.IsZero() && !controllerutil.ContainsFinalizer(p, queueFinalizer) {
		a.forget(req.NamespacedName)
		return ctrl.Result{}, nil
	}
	// A pipeline whose deletion waits for its pending events keeps its pool sized: the pool is
	// what predicts them.
	natsURL := pipelineNATSURL(p, a.Options)
	if natsURL == "" {
		// Nothing to read; the pipeline reports QueueNotConfigured, and a spec change wakes us.
		return ctrl.Result{}, nil
	}
	pool := &appsv1.Deployment{}
	if err := a.Client.Get(ctx, types.NamespacedName{Namespace: p.Namespace, Name: inferenceName(p)}, pool); err != nil {
		// Not created yet (the model has not loaded): nothing to size. Its creation wakes us.
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	ctx = ctrl.LoggerInto(ctx, ctrl.LoggerFrom(ctx).WithValues("freightPipeline", klog.KObj(p)))
	sp, err := a.pipelineState(p, natsURL)
	if err != nil {
		// The API's validation keeps this from happening; retrying cannot fix it, a spec change can.
		return ctrl.Result{}, reconcile.TerminalError(fmt.Errorf("autoscaling policy: %w", err))
	}

	now := a.Clock.Now()
	if !now.Before(sp.due) {
		// A scheduled sample (one a spec change or the pool's creation brought forward is not):
		// keep the cadence, so that a sample that ran late does not pull the next one forward.
		a.Metrics.SampleLateness.Observe(now.Sub(sp.due).Seconds())
		sp.due = sp.due.Add(sp.interval)
	}
	current := ptr.Deref(pool.Spec.Replicas, 1)
	topology := queue.TopologyFor(p.Namespace, p.Name)
	sample := sp.sampler.Sample(ctx, a.lagReader(natsURL, topology), now, current, pool.Status.ReadyReplicas)
	d := sample.Decision
	if sample.LagErr == nil {
		a.Metrics.QueueDepth.WithLabelValues(p.Namespace, p.Name).Set(float64(sample.Lag.Total()))
	} else {
		a.Metrics.ReadErrors.WithLabelValues(readErrorReason(sample.LagErr)).Inc()
	}
	a.Metrics.DesiredReplicas.WithLabelValues(p.Namespace, p.Name).Set(float64(d.Desired))

	// What this autoscaler wrote last, or, for a pipeline new to it (a new leader), what is in
	// status: the last scale time and the stall carry over.
	prev := sp.written
	if prev == nil {
		prev = p.Status.Autoscaling
	}
	var lastScale *metav1.Time
	if prev != nil {
		lastScale = prev.LastScaleTime
	}
	if d.Desired != current {
		if err := a.scale(ctx, p, pool, current, d); err != nil {
			return ctrl.Result{}, err
		}
		lastScale = ptr.To(metav1.NewTime(now))
	}
	st := &freightcastv1alpha1.AutoscalingStatus{CurrentReplicas: current, DesiredReplicas: d.Desired,
		LastScaleTime: lastScale, Reason: truncateReason(d.Reason)}
	if sample.LagErr == nil {
		st.QueueDepth = ptr.To(sample.Lag.Total())
	}
	stalled := sample.LagErr == nil && sample.Lag.Total() > 0 && pool.Status.ReadyReplicas == 0 && max(d.Desired, current) > 0
	st.StalledSince = nextStall(prev, stalled, now)
	if err := a.writeStatus(ctx, sp, p, st, now); err != nil {
		return ctrl.Result{}, err
	}
	end := a.Clock.Now()
	if !sp.due.After(end) {
		// The sample overran its slot: the next one comes a whole interval after it.
		sp.due = end.Add(sp.interval)
	}
	return ctrl.Result{RequeueAfter: sp.due.Sub(end)}, nil
}

// pipelineState returns what the autoscaler keeps of p, starting anew when p is new to it or
// its spec or server changed.
func (a *AutoscalerReconciler) pipelineState(p *freightcastv1alpha1.FreightPipeline, natsURL string) (*scaledPipeline, error) {
	key := client.ObjectKeyFromObject(p)
	a.mu.Lock()
	defer a.mu.Unlock()
	sp := a.pipelines[key]
	if sp != nil && sp.generation == p.Generation && sp.natsURL == natsURL {
		return sp, nil
	}
	policy, interval := spec.Autoscale(p)
	sampler, err := scaler.New(policy, interval)
	if err != nil {
		return nil, err
	}
	if sp == nil {
		sp = &scaledPipeline{due: a.Clock.Now()}
		if a.pipelines == nil {
			a.pipelines = map[types.NamespacedName]*scaledPipeline{}
		}
		a.pipelines[key] = sp
	}
	sp.generation, sp.natsURL, sp.interval, sp.sampler = p.Generation, natsURL, interval, sampler
	return sp, nil
}

// lagReader reads the backlog of the pipeline's consumer on the server at natsURL.
func (a *AutoscalerReconciler) lagReader(natsURL string, topology queue.Topology) scaler.Reader {
	return func(ctx context.Context) (queue.Lag, error) {
		js, err := a.Queue.JetStream(natsURL)
		if err != nil {
			return queue.Lag{}, err
		}
		return scaler.ConsumerLag(js, topology)(ctx)
	}
}

// scale writes the pool's size through the Deployment's scale subresource, and tells.
func (a *AutoscalerReconciler) scale(ctx context.Context, p *freightcastv1alpha1.FreightPipeline, pool *appsv1.Deployment, current int32, d autoscale.Decision) error {
	scale := &autoscalingv1.Scale{ObjectMeta: metav1.ObjectMeta{Namespace: pool.Namespace, Name: pool.Name},
		Spec: autoscalingv1.ScaleSpec{Replicas: d.Desired}}
	if err := a.Client.SubResource("scale").Update(ctx, pool, client.WithSubResourceBody(scale), client.FieldOwner(AutoscalerFieldOwner)); err != nil {
		return fmt.Errorf("scaling the inference pool from %d to %d: %w", current, d.Desired, err)
	}
	a.Metrics.ScaleDecisions.WithLabelValues(d.Direction.String(), scaleDecisionReason(d)).Inc()
	a.Recorder.Eventf(p, pool, corev1.EventTypeNormal, scaleEventReason(d), "ScaleInferencePool",
		"Scaled inference pool from %d to %d: %s", current, d.Desired, truncateNote(d.Reason))
	return nil
}

// applyInferencePool applies the inference pool as applyChild does, and starts a new pool at
// minReplicas. The pipeline's apply never carries replicas (the autoscaler's, through the scale
// subresource), so a pool created by it alone would start at the Deployment default of one: with
// minReplicas 0 that pod would consume events meant to wait for activationQueueDepth (or for a
// retained stream's next owner), and with a larger minimum the pool would start short. So the
// first apply carries minReplicas, and spec.replicas is then handed over to AutoscalerFieldOwner
// before the pipeline's field manager lets go of it — the hand-over server-side apply documents
// for giving replicas to an autoscaler; a field no manager owns any more would be reset. A
// reconcile interrupted between the two finds the pipeline still owning replicas and hands them
// over then. Only replicas change hands: every other field stays the pipeline manager's alone, so
// that what the spec stops asking for (a volume, an owner reference) is removed.
//
// The cache may not know yet of a pool created a moment ago; applying minReplicas onto it would
// shrink a pool the autoscaler has grown. So "not found" is asked again of the API server
// (apiReader) before the first apply; only this reconciler creates the pool, one reconcile of a
// pipeline at a time, so an answer of the API server holds until the apply.
func applyInferencePool(ctx context.Context, c client.Client, apiReader client.Reader, desired *appsv1ac.DeploymentApplyConfiguration, live *appsv1.Deployment, minReplicas int32) (applied bool, err error) {
	kind, key := fmt.Sprintf("%T", live), childKey(desired)
	owned, found, err := ownedFields(ctx, c, FreightPipelineFieldOwner, key, live, appsv1ac.ExtractDeployment)
	if err == nil && !found {
		owned, found, err = ownedFields(ctx, apiReader, FreightPipelineFieldOwner, key, live, appsv1ac.ExtractDeployment)
	}
	switch {
	case err != nil:
		return false, err
	case !found:
		// A copy: Apply overwrites what it sends with the server's answer.
		initial, err := deepCopyApplyConfiguration(desired)
		if err != nil {
			return false, fmt.Errorf("copying %s %s: %w", kind, key, err)
		}
		initial.Spec.Replicas = ptr.To(minReplicas)
		if err := c.Apply(ctx, initial, client.FieldOwner(FreightPipelineFieldOwner), client.ForceOwnership); err != nil {
			return false, fmt.Errorf("creating %s %s with %d replicas: %w", kind, key, minReplicas, err)
		}
		if err := handOverReplicas(ctx, c, key, minReplicas); err != nil {
			return true, err
		}
	case owned.Spec != nil && owned.Spec.Replicas != nil:
		if err := handOverReplicas(ctx, c, key, ptr.Deref(live.Spec.Replicas, 1)); err != nil {
			return false, err
		}
	}
	// What the pipeline's manager owned before the hand-over differs from desired in replicas at
	// least, so this apply lets go of them.
	return applyIfChanged(ctx, c, FreightPipelineFieldOwner, kind, desired, owned, found)
}

// deepCopyApplyConfiguration copies an apply configuration through its JSON form, which is all
// that an apply sends.
func deepCopyApplyConfiguration[A any](in *A) (*A, error) {
	raw, err := json.Marshal(in)
	if err != nil {
		return nil, err
	}
	out := new(A)
	return out, json.Unmarshal(raw, out)
}

// handOverReplicas makes AutoscalerFieldOwner an owner of the pool's spec.replicas at its
// current value, changing nothing.
func handOverReplicas(ctx context.Context, c client.Client, key client.ObjectKey, replicas int32) error {
	handOver := appsv1ac.Deployment(key.Name, key.Namespace).WithSpec(appsv1ac.DeploymentSpec().WithReplicas(replicas))
	if err := c.Apply(ctx, handOver, client.FieldOwner(AutoscalerFieldOwner), client.ForceOwnership); err != nil {
		return fmt.Errorf("handing the replicas of Deployment %s over to the autoscaler: %w", key, err)
	}
	return nil
}

// nextStall is status.autoscaling.stalledSince after a sample at now: kept while the backlog
// stays stalled (events queued, no ready pod, and the pool has or wants pods), set to now when a
// stall starts, cleared when it ends.
func nextStall(prev *freightcastv1alpha1.AutoscalingStatus, stalled bool, now time.Time) *metav1.Time {
	switch {
	case !stalled:
		return nil
	case prev != nil && prev.StalledSince != nil:
		return prev.StalledSince
	}
	return ptr.To(metav1.NewTime(now))
}

// writeStatus applies status.autoscaling at once when the decision changed (sizes, last scale,
// depth known or not, a stall begun or ended), and otherwise at most every statusRefresh: depth
// and reason move with every sample, and the gauge freightcast_queue_depth is where those are
// followed live.
func (a *AutoscalerReconciler) writeStatus(ctx context.Context, sp *scaledPipeline, p *freightcastv1alpha1.FreightPipeline, st *freightcastv1alpha1.AutoscalingStatus, now time.Time) error {
	last := sp.written
	if last == nil {
		last = p.Status.Autoscaling
	}
	if last != nil && !decisionChanged(last, st) && now.Sub(sp.writtenAt) < statusRefresh {
		return nil
	}
	if equality.Semantic.DeepEqual(p.Status.Autoscaling, st) {
		sp.written, sp.writtenAt = st, now
		return nil
	}
	gvk := freightcastv1alpha1.GroupVersion.WithKind("FreightPipeline")
	if same, err := sameObject(ctx, a.APIReader, p, gvk); err != nil || !same {
		// Deleted, or created again under its name since the cache was read: the new one's own
		// samples report on it.
		return err
	}
	if err := applyStatus(ctx, a.Client, AutoscalerFieldOwner, p, gvk, map[string]any{"autoscaling": st}); err != nil {
		// Deleted since it was read: there is nothing to report on, and its delete event forgets it.
		return client.IgnoreNotFound(err)
	}
	sp.written, sp.writtenAt = st, now
	return nil
}

// decisionChanged reports whether b tells a different decision than a, not only a new depth or
// reason.
func decisionChanged(a, b *freightcastv1alpha1.AutoscalingStatus) bool {
	return a.CurrentReplicas != b.CurrentReplicas || a.DesiredReplicas != b.DesiredReplicas ||
		!equality.Semantic.DeepEqual(a.LastScaleTime, b.LastScaleTime) || (a.QueueDepth == nil) != (b.QueueDepth == nil) ||
		!equality.Semantic.DeepEqual(a.StalledSince, b.StalledSince)
}

// forget drops what the autoscaler keeps of a pipeline that is gone, and its series.
func (a *AutoscalerReconciler) forget(key types.NamespacedName) {
	a.mu.Lock()
	delete(a.pipelines, key)
	a.mu.Unlock()
	a.Metrics.QueueDepth.DeleteLabelValues(key.Namespace, key.Name)
	a.Metrics.DesiredReplicas.DeleteLabelValues(key.Namespace, key.Name)
}

// SetupWithManager registers the autoscaler as a controller of FreightPipelines named
// "autoscaler". A spec change samples at once (and starts a new recommender); so does the
// creation of a pipeline's inference Deployment, the first moment there is a pool to size.
// Status writes (its own and the pipeline reconciler's) do not wake it: its own requeue does.
func (a *AutoscalerReconciler) SetupWithManager(mgr ctrl.Manager) error {
	poolCreated := predicate.Funcs{
		CreateFunc: func(e event.CreateEvent) bool {
			return e.Object.GetLabels()[labelComponent] == componentInference
		},
		UpdateFunc:  func(event.UpdateEvent) bool { return false },
		DeleteFunc:  func(event.DeleteEvent) bool { return false },
		GenericFunc: func(event.GenericEvent) bool { return false },
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&freightcastv1alpha1.FreightPipeline{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(&appsv1.Deployment{}, handler.EnqueueRequestForOwner(mgr.GetScheme(), mgr.GetRESTMapper(),
			&freightcastv1alpha1.FreightPipeline{}, handler.OnlyControllerOwner()), builder.WithPredicates(poolCreated)).
		WithOptions(controller.Options{MaxConcurrentReconciles: max(1, a.Concurrency)}).
		Named("autoscaler").
		Complete(a)
}

func readErrorReason(err error) string {
	switch {
	case errors.Is(err, queue.ErrUnreachable):
		return "unreachable"
	case errors.Is(err, queue.ErrConsumerMissing):
		return "consumer_missing"
	}
	return "other"
}

// scaleDecisionReason is the reason label of freightcast_scale_decisions_total.
func scaleDecisionReason(d autoscale.Decision) string {
	switch {
	case d.Fallback:
		return "fallback"
	case d.Bounds:
		return "bounds"
	}
	return "queue_depth"
}

func scaleEventReason(d autoscale.Decision) string {
	switch {
	case d.Fallback:
		return "ScaledToFallback"
	case d.Direction == autoscale.Up:
		return "ScaledUp"
	}
	return "ScaledDown"
}

// truncateReason keeps a reason within status.autoscaling.reason's 1024-byte bound.
func truncateReason(r string) string { return truncateString(r, 1024) }
