package controllers

import (
	"context"
	"errors"
	"hash/fnv"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"

	freightcastv1alpha1 "github.com/freightcast/freightcast/api/v1alpha1"
	"github.com/freightcast/freightcast/internal/autoscale"
	"github.com/freightcast/freightcast/internal/metrics"
	"github.com/freightcast/freightcast/internal/queue"
	"github.com/freightcast/freightcast/internal/spec"
)

const (
	// autoscalerTick is how often the autoscaler looks for pipelines whose sample is due; it
	// bounds the lateness of a sample, not its cost.
	autoscalerTick = 100 * time.Millisecond
	// statusRefresh is how often a changing queue depth alone is written to status: the gauge
	// freightcast_queue_depth follows every sample, the API server gets one write per pipeline
	// per refresh at most, unless a decision changes.
	statusRefresh = 10 * time.Second
	// sampleTimeout bounds one consumer-info request.
	sampleTimeout = 2 * time.Second
)

// Autoscaler sizes every pipeline's inference pool from its queue depth. It samples each
// tracked pipeline at the pipeline's poll interval with one consumer-info request, asks the
// pipeline's recommender, and writes the pool's size through the Deployment's scale subresource
// only — the applied Deployment never carries replicas, so a GitOps tool never fights it. It runs
// on the leader only, apart from the reconcile workers, so sampling never blocks a reconcile.
type Autoscaler struct {
	Client   client.Client
	Queue    JetStreamConnector
	Recorder events.EventRecorder
	Clock    clock.WithTicker
	Metrics  *metrics.Autoscaling
	// Concurrency bounds the samples in flight at once.
	Concurrency int
	// Wake receives a pipeline whose queue reads started or stopped failing, or whose backlog
	// became or stopped being stalled, so that its reconcile reports it at once rather than at
	// its next retry.
	Wake chan<- event.GenericEvent
	// StallGrace is how long, beyond two poll intervals, a backlog may wait with no ready
	// inference pod (while the pool wants some) before it is reported stalled: two intervals
	// so that one sample taken just before a pod turned ready never counts, the grace for pods
	// to start.
	StallGrace time.Duration

	mu      sync.Mutex
	tracked map[types.NamespacedName]*scaledPipeline
}

// scaledPipeline is the autoscaler's state of one pipeline.
type scaledPipeline struct {
	key        types.NamespacedName
	generation int64
	natsURL    string
	topology   queue.Topology
	interval   time.Duration
	rec        *autoscale.Recommender

	due     time.Time
	running bool
	failing bool
	// throughput measures the acknowledgements per ready replica between samples.
	throughput queue.ThroughputMeter
	lastScale  *metav1.Time
	written    *freightcastv1alpha1.AutoscalingStatus
	writtenAt  time.Time
	// stall is the backlog waiting with no ready consumer, nil when there is none; its
	// reported field tells whether it has lasted long enough to be reported.
	stall *queueStall
}

// queueStall is a backlog that no ready inference pod consumes.
type queueStall struct {
	// since is the first sample that saw it.
	since time.Time
	// reported is true once it outlasted the threshold; the pipeline is then Degraded.
	reported bool
}

var _ interface {
	Start(context.Context) error
	NeedLeaderElection() bool
} = (*Autoscaler)(nil)

// Track starts autoscaling p's pool on the NATS server at natsURL, or updates what it knows of
// it. A spec change (a new generation) starts a new recommender, which holds scale-downs for one
// window: after a change, the cautious direction.
func (a *Autoscaler) Track(p *freightcastv1alpha1.FreightPipeline, natsURL string) error {
	key := types.NamespacedName{Namespace: p.Namespace, Name: p.Name}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.tracked == nil {
		a.tracked = map[types.NamespacedName]*scaledPipeline{}
	}
	sp := a.tracked[key]
	if sp != nil && sp.generation == p.Generation && sp.natsURL == natsURL {
		return nil
	}
	policy, interval := spec.Autoscale(p)
	rec, err := autoscale.New(policy)
	if err != nil {
		return err
	}
	if sp == nil {
		// Spread first samples over the interval by the pipeline's name, so that pipelines
		// tracked together (an operator restart) do not all sample in the same tick.
		h := fnv.New32a()
		h.Write([]byte(key.String()))
		offset := time.Duration(h.Sum32()) % interval
		sp = &scaledPipeline{key: key, due: a.Clock.Now().Add(offset)}
		a.tracked[key] = sp
	}
	sp.generation, sp.natsURL, sp.rec, sp.interval = p.Generation, natsURL, rec, interval
	sp.topology = queue.TopologyFor(p.Namespace, p.Name)
	return nil
}

// Forget stops autoscaling the pipeline (it was deleted).
func (a *Autoscaler) Forget(key types.NamespacedName) {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.tracked, key)
	a.Metrics.QueueDepth.DeleteLabelValues(key.Namespace, key.Name)
	a.Metrics.DesiredReplicas.DeleteLabelValues(key.Namespace, key.Name)
}

// NeedLeaderElection makes the manager run the autoscaler on the leader only.
func (a *Autoscaler) NeedLeaderElection() bool { return true }

// Start samples due pipelines until ctx ends.
func (a *Autoscaler) Start(ctx context.Context) error {
	ticker := a.Clock.NewTicker(autoscalerTick)
	defer ticker.Stop()
	slots := make(chan struct{}, max(1, a.Concurrency))
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C():
		}
		now := a.Clock.Now()
		for _, sp := range a.due(now) {
			a.Metrics.SampleLateness.Observe(now.Sub(sp.due).Seconds())
			select {
			case slots <- struct{}{}:
			case <-ctx.Done():
				return nil
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-slots }()
				a.sample(ctx, sp)
				a.mu.Lock()
				sp.running = false
				// Keep the cadence; a sample that ran late does not pull the next one forward.
				sp.due = sp.due.Add(sp.interval)
				if next := a.Clock.Now(); sp.due.Before(next) {
					sp.due = next.Add(sp.interval)
				}
				a.mu.Unlock()
			}()
		}
	}
}

// due marks and returns the pipelines whose sample time has come.
func (a *Autoscaler) due(now time.Time) []*scaledPipeline {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []*scaledPipeline
	for _, sp := range a.tracked {
		if !sp.running && !now.Before(sp.due) {
			sp.running = true
			out = append(out, sp)
		}
	}
	return out
}

// sample reads one pipeline's depth, decides, scales and reports. Only one sample of a pipeline
// runs at a time; Track may swap the recommender meanwhile, so it is read under the lock.
func (a *Autoscaler) sample(ctx context.Context, sp *scaledPipeline) {
	log := ctrl.LoggerFrom(ctx).WithValues("freightPipeline", sp.key)
	a.mu.Lock()
	rec, natsURL, topology, interval := sp.rec, sp.natsURL, sp.topology, sp.interval
	a.mu.Unlock()
	p := &freightcastv1alpha1.FreightPipeline{}
	if err := a.Client.Get(ctx, sp.key, p); err != nil {
		if apierrors.IsNotFound(err) {
			a.Forget(sp.key)
		}
		return
	}
	pool := &appsv1.Deployment{}
	if err := a.Client.Get(ctx, types.NamespacedName{Namespace: p.Namespace, Name: inferenceName(p)}, pool); err != nil {
		// Not created yet (the model has not loaded): nothing to size.
		return
	}
	current := ptr.Deref(pool.Spec.Replicas, 1)
	now := a.Clock.Now()
	lag, lagErr := a.readLag(ctx, natsURL, topology, interval)
	in := autoscale.Input{Now: now, Current: current, Ready: pool.Status.ReadyReplicas, LagErr: lagErr}
	if lagErr == nil {
		in.Lag = lag.Total()
		in.Throughput = sp.throughput.Sample(lag, now, pool.Status.ReadyReplicas)
		a.Metrics.QueueDepth.WithLabelValues(p.Namespace, p.Name).Set(float64(in.Lag))
	} else {
		a.Metrics.ReadErrors.WithLabelValues(readErrorReason(lagErr)).Inc()
	}
	a.noteFailing(sp, p, lagErr != nil)

	d := rec.Recommend(in)
	a.noteStall(sp, p, lagErr == nil && in.Lag > 0 && in.Ready == 0 && max(d.Desired, current) > 0, now, interval)
	a.Metrics.DesiredReplicas.WithLabelValues(p.Namespace, p.Name).Set(float64(d.Desired))
	if d.Desired != current {
		scale := &autoscalingv1.Scale{ObjectMeta: metav1.ObjectMeta{Namespace: pool.Namespace, Name: pool.Name},
			Spec: autoscalingv1.ScaleSpec{Replicas: d.Desired}}
		if err := a.Client.SubResource("scale").Update(ctx, pool, client.WithSubResourceBody(scale)); err != nil {
			log.Error(err, "scaling the inference pool", "from", current, "to", d.Desired)
			return
		}
		sp.lastScale = ptr.To(metav1.NewTime(now))
		reason := "queue_depth"
		if d.Fallback {
			reason = "fallback"
		}
		a.Metrics.ScaleDecisions.WithLabelValues(d.Direction.String(), reason).Inc()
		a.Recorder.Eventf(p, pool, corev1.EventTypeNormal, scaleEventReason(d), "ScaleInferencePool",
			"Scaled inference pool from %d to %d: %s", current, d.Desired, truncateNote(d.Reason))
	}

	st := &freightcastv1alpha1.AutoscalingStatus{CurrentReplicas: current, DesiredReplicas: d.Desired,
		LastScaleTime: sp.lastScale, Reason: truncateReason(d.Reason)}
	if lagErr == nil {
		st.QueueDepth = ptr.To(in.Lag)
	}
	a.writeStatus(ctx, sp, p, st, now)
}

func (a *Autoscaler) readLag(ctx context.Context, natsURL string, topology queue.Topology, interval time.Duration) (queue.Lag, error) {
	js, err := a.Queue.JetStream(natsURL)
	if err != nil {
		return queue.Lag{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, min(sampleTimeout, interval))
	defer cancel()
	return queue.ReadLag(ctx, js, topology.Stream, topology.Consumer)
}

// noteFailing wakes the pipeline's reconcile when its queue reads start or stop failing.
func (a *Autoscaler) noteFailing(sp *scaledPipeline, p *freightcastv1alpha1.FreightPipeline, failing bool) {
	if sp.failing == failing {
		return
	}
	sp.failing = failing
	a.wake(p)
}

// noteStall follows a backlog that no ready inference pod consumes (stalled: events queued,
// no ready pod, and the pool has or wants pods), and wakes the pipeline's reconcile when
// it has lasted StallGrace plus two poll intervals, and again when it ends after that.
func (a *Autoscaler) noteStall(sp *scaledPipeline, p *freightcastv1alpha1.FreightPipeline, stalled bool, now time.Time, interval time.Duration) {
	a.mu.Lock()
	defer a.mu.Unlock()
	switch {
	case !stalled:
		wasReported := sp.stall != nil && sp.stall.reported
		sp.stall = nil
		if wasReported {
			a.wake(p)
		}
	case sp.stall == nil:
		sp.stall = &queueStall{since: now}
	default:
		if !sp.stall.reported && now.Sub(sp.stall.since) >= a.StallGrace+2*interval {
			sp.stall.reported = true
			a.wake(p)
		}
	}
}

// Stall returns the reported stall of a pipeline's backlog, nil when there is none.
func (a *Autoscaler) Stall(key types.NamespacedName) *queueStall {
	a.mu.Lock()
	defer a.mu.Unlock()
	sp := a.tracked[key]
	if sp == nil || sp.stall == nil || !sp.stall.reported {
		return nil
	}
	st := *sp.stall
	return &st
}

// wake queues a reconcile of p.
func (a *Autoscaler) wake(p *freightcastv1alpha1.FreightPipeline) {
	if a.Wake != nil {
		select {
		// A copy of the key only: p is patched right after, while the controller reads this.
		case a.Wake <- event.GenericEvent{Object: &freightcastv1alpha1.FreightPipeline{
			ObjectMeta: metav1.ObjectMeta{Namespace: p.Namespace, Name: p.Name}}}:
		default:
			// A full channel already holds wake-ups; the reconcile's own retry covers the rest.
		}
	}
}

// writeStatus patches status.autoscaling at once when the decision changed (sizes, last scale,
// depth known or not), and otherwise at most every statusRefresh: depth and reason move with every
// sample, and the gauge freightcast_queue_depth is where those are followed live.
func (a *Autoscaler) writeStatus(ctx context.Context, sp *scaledPipeline, p *freightcastv1alpha1.FreightPipeline, st *freightcastv1alpha1.AutoscalingStatus, now time.Time) {
	if w := sp.written; w != nil {
		decisionChanged := w.CurrentReplicas != st.CurrentReplicas || w.DesiredReplicas != st.DesiredReplicas ||
			!equality.Semantic.DeepEqual(w.LastScaleTime, st.LastScaleTime) || (w.QueueDepth == nil) != (st.QueueDepth == nil)
		if !decisionChanged && now.Sub(sp.writtenAt) < statusRefresh {
			return
		}
	}
	if equality.Semantic.DeepEqual(p.Status.Autoscaling, st) {
		sp.written, sp.writtenAt = st, now
		return
	}
	patch := client.MergeFrom(p.DeepCopy())
	p.Status.Autoscaling = st
	if err := a.Client.Status().Patch(ctx, p, patch); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "writing status.autoscaling", "freightPipeline", sp.key)
		return
	}
	sp.written, sp.writtenAt = st, now
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
