package controllers

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	testingclock "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	freightcastv1alpha1 "github.com/freightcast/freightcast/api/v1alpha1"
	"github.com/freightcast/freightcast/internal/event"
	"github.com/freightcast/freightcast/internal/metrics"
	"github.com/freightcast/freightcast/internal/model"
	"github.com/freightcast/freightcast/internal/queue"
	"github.com/freightcast/freightcast/internal/spec"
	"github.com/freightcast/freightcast/internal/testing/natstest"
	"github.com/freightcast/freightcast/internal/testing/testenv"
	"github.com/freightcast/freightcast/internal/worker"
)

// fastScaling makes the autoscaler react within a test's patience: a short poll interval, no
// scale-up window, a 2 s scale-down window, and rate policies that allow any step.
func fastScaling(p *freightcastv1alpha1.FreightPipeline) {
	p.Spec.Inference.PollInterval = &metav1.Duration{Duration: 500 * time.Millisecond}
	p.Spec.Inference.ScaleUp = &freightcastv1alpha1.ScalingRules{
		StabilizationWindow: &metav1.Duration{},
		Policies:            []freightcastv1alpha1.ScalingPolicy{{Type: "Pods", Value: 100, Period: metav1.Duration{Duration: time.Second}}},
	}
	p.Spec.Inference.ScaleDown = &freightcastv1alpha1.ScalingRules{
		StabilizationWindow: &metav1.Duration{Duration: 2 * time.Second},
		Policies:            []freightcastv1alpha1.ScalingPolicy{{Type: "Percent", Value: 100, Period: metav1.Duration{Duration: time.Second}}},
	}
}

func waitPoolReplicas(t testing.TB, ns, name string, want int32, timeout time.Duration) {
	t.Helper()
	waitDeployment(t, timeout, ns, name, fmt.Sprintf("inference pool %s at %d replicas", name, want), func(d *appsv1.Deployment) error {
		if got := ptr.Deref(d.Spec.Replicas, 1); got != want {
			return fmt.Errorf("replicas %d", got)
		}
		return nil
	})
}

func publishEvents(t testing.TB, js jetstream.JetStream, subject, prefix string, n int) {
	t.Helper()
	ctx := context.Background()
	var futures []jetstream.PubAckFuture
	await := func() {
		for _, f := range futures {
			select {
			case <-f.Ok():
			case err := <-f.Err():
				t.Fatal(err)
			case <-ctx.Done():
			}
		}
		futures = futures[:0]
	}
	for i := range n {
		id := fmt.Sprintf("%s-%d", prefix, i)
		data, err := event.Encode(&event.Event{ID: id, Features: make([]float64, 12), ReceivedAt: time.Now()})
		if err != nil {
			t.Fatal(err)
		}
		f, err := js.PublishMsgAsync(&nats.Msg{Subject: subject, Data: data}, jetstream.WithMsgID(id))
		if err != nil {
			t.Fatal(err)
		}
		// Stay under the client's limit of outstanding asynchronous publishes.
		if futures = append(futures, f); len(futures) == 1000 {
			await()
		}
	}
	await()
}

func jetStreamFor(t testing.TB, url string) jetstream.JetStream {
	t.Helper()
	_, js := natstest.Connect(t, url)
	return js
}

// scalingPipeline starts a nats-server and an operator watching a new namespace, and creates there
// the pipeline "orders" over the loaded model "m" with fast scaling, adjusted by tune (may be nil).
// It returns once the inference Deployment exists.
func scalingPipeline(t *testing.T, tune func(*freightcastv1alpha1.FreightPipeline), opts ...func(*Options)) (*natstest.Server, string, *freightcastv1alpha1.FreightPipeline) {
	t.Helper()
	srv := natstest.Start(t)
	ns := newNamespace(t)
	startOperator(t, srv.URL(), ns, opts...)
	loadedModel(t, ns, "m")
	p := newPipeline(ns, "orders", "m")
	fastScaling(p)
	if tune != nil {
		tune(p)
	}
	mustCreate(t, p)
	mustEventuallyGetDeployment(t, ns, "orders-inference")
	return srv, ns, p
}

func TestAutoscalerFollowsQueueDepth(t *testing.T) {
	ctx := context.Background()
	srv, ns, p := scalingPipeline(t, func(p *freightcastv1alpha1.FreightPipeline) {
		p.Spec.Inference.TargetQueueDepthPerReplica = 500
		p.Spec.Inference.MaxReplicas = 20
	})
	waitCondition(t, p, freightcastv1alpha1.ConditionQueueReady, metav1.ConditionTrue, freightcastv1alpha1.ReasonQueueProvisioned)

	// 5,000 events and no worker: 5000 / 500 = 10 workers.
	js := jetStreamFor(t, srv.URL())
	topo := queue.TopologyFor(ns, "orders")
	publishEvents(t, js, topo.Subject, "e", 5000)
	waitPoolReplicas(t, ns, "orders-inference", 10, 15*time.Second)
	waitEvent(t, p, corev1.EventTypeNormal, "ScaledUp")
	testenv.Eventually(t, 10*time.Second, "status.autoscaling shows the decision", func() error {
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(p), p); err != nil {
			return err
		}
		a := p.Status.Autoscaling
		if a == nil || a.QueueDepth == nil || *a.QueueDepth != 5000 || a.DesiredReplicas != 10 || a.LastScaleTime == nil || a.Reason == "" {
			return fmt.Errorf("autoscaling status %+v", a)
		}
		return nil
	})
	// Two writers of one status, each owning its own fields through server-side apply: neither
	// took the other's, and nothing was written with a whole-object update.
	wantOwners := map[string][]string{
		AutoscalerFieldOwner:      {"f:autoscaling"},
		FreightPipelineFieldOwner: {"f:conditions", "f:inference", "f:ingestion", "f:ingestionEndpoint", "f:observedGeneration", "f:queue", "f:stream"},
	}
	if diff := cmp.Diff(wantOwners, statusFieldOwners(t, p)); diff != "" {
		t.Errorf("status field owners (-want +got):\n%s", diff)
	}

	// The backlog clears: after the 2 s scale-down window the pool returns to minReplicas.
	stream, err := js.Stream(ctx, topo.Stream)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Purge(ctx); err != nil {
		t.Fatal(err)
	}
	waitPoolReplicas(t, ns, "orders-inference", 1, 15*time.Second)
	waitEvent(t, p, corev1.EventTypeNormal, "ScaledDown")
}

// statusFieldOwners maps each manager that wrote p's status subresource to the top-level status
// fields it owns; a manager that wrote it with an update rather than an apply is named so.
func statusFieldOwners(t *testing.T, p *freightcastv1alpha1.FreightPipeline) map[string][]string {
	t.Helper()
	owners := map[string][]string{}
	for _, mf := range p.ManagedFields {
		if mf.Subresource != "status" {
			continue
		}
		manager := mf.Manager
		if mf.Operation != metav1.ManagedFieldsOperationApply {
			manager += " (" + string(mf.Operation) + ")"
		}
		var fields struct {
			Status map[string]json.RawMessage `json:"f:status"`
		}
		if mf.FieldsV1 != nil {
			if err := json.Unmarshal(mf.FieldsV1.Raw, &fields); err != nil {
				t.Fatalf("managed fields of %s: %v", manager, err)
			}
		}
		owners[manager] = slices.Sorted(maps.Keys(fields.Status))
	}
	return owners
}

func TestAutoscalerFallsBackWhileNATSIsDown(t *testing.T) {
	srv, ns, p := scalingPipeline(t, func(p *freightcastv1alpha1.FreightPipeline) {
		p.Spec.Inference.Fallback = &freightcastv1alpha1.FallbackSpec{FailureThreshold: 2, Replicas: 4}
	})
	waitCondition(t, p, freightcastv1alpha1.ConditionQueueReady, metav1.ConditionTrue, freightcastv1alpha1.ReasonQueueProvisioned)
	waitPoolReplicas(t, ns, "orders-inference", 1, 10*time.Second)

	srv.Stop()
	// Two failed reads, then the fallback size; and the outage shows as a condition.
	waitPoolReplicas(t, ns, "orders-inference", 4, 15*time.Second)
	waitEvent(t, p, corev1.EventTypeNormal, "ScaledToFallback")
	waitCondition(t, p, freightcastv1alpha1.ConditionQueueReady, metav1.ConditionFalse, freightcastv1alpha1.ReasonQueueUnreachable)
	if a := p.Status.Autoscaling; a != nil && a.QueueDepth != nil {
		t.Errorf("status.autoscaling.queueDepth = %d while NATS is down; it must be absent", *a.QueueDepth)
	}

	srv.Restart(t)
	waitCondition(t, p, freightcastv1alpha1.ConditionQueueReady, metav1.ConditionTrue, freightcastv1alpha1.ReasonQueueProvisioned)
	// Depth readable again (and zero): back to minReplicas after the scale-down window.
	waitPoolReplicas(t, ns, "orders-inference", 1, 20*time.Second)
}

func TestAutoscalerScalesToZeroAndBack(t *testing.T) {
	srv, ns, p := scalingPipeline(t, func(p *freightcastv1alpha1.FreightPipeline) {
		p.Spec.Inference.MinReplicas = ptr.To[int32](0)
	})
	markDeploymentRolledOut(t, ns, "orders-ingest")
	waitPoolReplicas(t, ns, "orders-inference", 0, 15*time.Second)
	markDeploymentRolledOut(t, ns, "orders-inference")
	waitCondition(t, p, freightcastv1alpha1.ConditionInferenceReady, metav1.ConditionTrue, freightcastv1alpha1.ReasonScaledToZero)

	js := jetStreamFor(t, srv.URL())
	publishEvents(t, js, queue.TopologyFor(ns, "orders").Subject, "wake", 1)
	waitPoolReplicas(t, ns, "orders-inference", 1, 10*time.Second)
}

// TestNewPoolStartsAtMinReplicas checks the inference pool's first size: minReplicas, from the
// pool's creation on. A pool that started at the Deployment default of one pod would consume the
// events that a scaled-to-zero pipeline keeps waiting for its activation depth.
func TestNewPoolStartsAtMinReplicas(t *testing.T) {
	for _, minReplicas := range []int32{0, 3} {
		t.Run(fmt.Sprint(minReplicas), func(t *testing.T) {
			_, ns, p := scalingPipeline(t, func(p *freightcastv1alpha1.FreightPipeline) {
				p.Spec.Inference.MinReplicas = ptr.To(minReplicas)
				p.Spec.Inference.MaxReplicas = 5
			})
			pool := mustEventuallyGetDeployment(t, ns, "orders-inference")
			if got := ptr.Deref(pool.Spec.Replicas, 1); got != minReplicas {
				t.Fatalf("the new pool has %d replicas, want minReplicas %d", got, minReplicas)
			}
			// The pipeline's own apply follows the creation and a spec change applies again:
			// neither takes replicas, which stay the autoscaler's.
			mustUpdate(t, p, func() { p.Spec.Ingestion.Replicas = ptr.To[int32](3) })
			waitDeployment(t, 10*time.Second, ns, "orders-ingest", "ingestion at 3 replicas", func(d *appsv1.Deployment) error {
				if got := ptr.Deref(d.Spec.Replicas, 1); got != 3 {
					return fmt.Errorf("replicas %d", got)
				}
				return nil
			})
			pool = mustEventuallyGetDeployment(t, ns, "orders-inference")
			if got := ptr.Deref(pool.Spec.Replicas, 1); got != minReplicas {
				t.Errorf("after the pipeline's applies the pool has %d replicas, want %d", got, minReplicas)
			}
			for _, mf := range pool.ManagedFields {
				if mf.FieldsV1 == nil || !strings.Contains(string(mf.FieldsV1.Raw), `"f:replicas"`) {
					continue
				}
				if mf.Manager != AutoscalerFieldOwner {
					t.Errorf("spec.replicas of the pool is owned by %s (%s), want %s alone: %s", mf.Manager, mf.Operation, AutoscalerFieldOwner, mf.FieldsV1.Raw)
				}
			}
		})
	}
}

// podStandIn plays the Deployment controller and the kubelet for an inference pool, which
// envtest does not run: it keeps as many in-process workers running as the pool's replicas, and
// stops surplus ones the way a pod gets SIGTERM (the worker drains and acknowledges).
type podStandIn struct {
	t       *testing.T
	ns      string
	cfg     worker.Config
	mu      sync.Mutex
	running []context.CancelFunc
	wg      sync.WaitGroup
	stopped int
}

func (s *podStandIn) follow(ctx context.Context) {
	for ctx.Err() == nil {
		d, err := getDeployment(s.ns, "orders-inference")
		if err == nil {
			want := int(ptr.Deref(d.Spec.Replicas, 1))
			s.mu.Lock()
			for len(s.running) < want {
				w, err := worker.New(s.cfg)
				if err != nil {
					s.t.Error(err)
					s.mu.Unlock()
					return
				}
				wctx, cancel := context.WithCancel(context.Background())
				s.running = append(s.running, cancel)
				s.wg.Add(1)
				go func() { defer s.wg.Done(); _ = w.Run(wctx) }()
			}
			for len(s.running) > want {
				s.running[len(s.running)-1]()
				s.running = s.running[:len(s.running)-1]
				s.stopped++
			}
			s.mu.Unlock()
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.mu.Lock()
	for _, c := range s.running {
		c()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// TestScaleInLosesNothing runs a burst through a pool the autoscaler grows and then shrinks while
// workers still hold events: every event is predicted once, none is redelivered, none expires
// into the dead-letter subject.
func TestScaleInLosesNothing(t *testing.T) {
	ctx := context.Background()
	srv, ns, p := scalingPipeline(t, func(p *freightcastv1alpha1.FreightPipeline) {
		p.Spec.Inference.TargetQueueDepthPerReplica = 300
		p.Spec.Inference.MaxReplicas = 6
		p.Spec.Inference.BatchSize = 16
	})
	waitCondition(t, p, freightcastv1alpha1.ConditionQueueReady, metav1.ConditionTrue, freightcastv1alpha1.ReasonQueueProvisioned)

	js := jetStreamFor(t, srv.URL())
	topo := queue.TopologyFor(ns, "orders")
	rt := testenv.FreightModel(t)
	wm, err := metrics.NewWorker(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	pods := &podStandIn{t: t, ns: ns, cfg: worker.Config{JetStream: js, Topology: topo, Model: &slowModel{Runtime: rt},
		ModelName: "m", ModelVersion: "1", BatchSize: 16, MaxDeliver: 5, Metrics: wm}}
	followCtx, stopFollowing := context.WithCancel(ctx)
	followed := make(chan struct{})
	go func() { pods.follow(followCtx); close(followed) }()

	const n = 6000
	publishEvents(t, js, topo.Subject, "burst", n)
	kv, err := js.KeyValue(ctx, topo.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	natstest.WaitValues(t, kv, n, 60*time.Second)
	waitPoolReplicas(t, ns, "orders-inference", 1, 20*time.Second)
	testenv.Eventually(t, 10*time.Second, "the stand-in stopped the surplus workers", func() error {
		pods.mu.Lock()
		defer pods.mu.Unlock()
		if len(pods.running) != 1 {
			return fmt.Errorf("%d workers running", len(pods.running))
		}
		return nil
	})
	stopFollowing()
	<-followed

	cons, err := js.Consumer(ctx, topo.Stream, topo.Consumer)
	if err != nil {
		t.Fatal(err)
	}
	info := cons.CachedInfo()
	if info.NumRedelivered != 0 || info.NumPending != 0 || info.NumAckPending != 0 {
		t.Errorf("consumer after the burst: redelivered %d, pending %d, ack pending %d; want all 0", info.NumRedelivered, info.NumPending, info.NumAckPending)
	}
	if pods.stopped == 0 {
		t.Error("no worker was stopped: the pool never scaled in, so this test proved nothing")
	}
	out, err := js.Stream(ctx, topo.OutputStream)
	if err != nil {
		t.Fatal(err)
	}
	outInfo, err := out.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// The output stream holds dead letters only, each under its event's subject.
	if dl := outInfo.State.Msgs; dl != 0 {
		t.Errorf("%d dead letters", dl)
	}
	t.Logf("%d events, %d workers stopped while the pool shrank, 0 redeliveries", n, pods.stopped)
}

// slowModel stretches each model run, so that workers hold their batches long enough for the
// pool to shrink under them.
type slowModel struct{ model.Runtime }

func (m *slowModel) Run(rows int, in, out [][]float32) error {
	time.Sleep(30 * time.Millisecond)
	return m.Runtime.Run(rows, in, out)
}

// TestQueueStall follows a backlog through the autoscaler's samples, which record in status
// when it started to wait with no ready worker (nextStall), and the pipeline reconciler, which
// reports it once it has lasted the stall grace plus two poll intervals (observeQueueStall).
func TestQueueStall(t *testing.T) {
	t.Parallel()
	const grace = 10 * time.Second
	type sample struct {
		at      time.Duration // since the first sample
		stalled bool
	}
	cases := map[string]struct {
		samples []sample
		// wantReported is the pipeline's view after each sample.
		wantReported []bool
	}{
		"a backlog that a worker picks up within the threshold is never reported": {
			samples:      []sample{{0, true}, {time.Second, true}, {2 * time.Second, false}},
			wantReported: []bool{false, false, false},
		},
		"a backlog with no ready worker past grace + 2 intervals is reported": {
			samples:      []sample{{0, true}, {5 * time.Second, true}, {12 * time.Second, true}, {13 * time.Second, true}},
			wantReported: []bool{false, false, true, true},
		},
		"a reported stall that ends is no longer reported": {
			samples:      []sample{{0, true}, {12 * time.Second, true}, {13 * time.Second, false}},
			wantReported: []bool{false, true, false},
		},
		"a stall that ends restarts the clock": {
			samples:      []sample{{0, true}, {11 * time.Second, false}, {12 * time.Second, true}, {20 * time.Second, true}},
			wantReported: []bool{false, false, false, false},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			clk := testingclock.NewFakeClock(testNow)
			p := newPipeline("ns", "orders", "m")
			p.Spec.Inference.PollInterval = &metav1.Duration{Duration: time.Second}
			p.Status.Autoscaling = &freightcastv1alpha1.AutoscalingStatus{}
			var firstStall *metav1.Time
			for i, s := range tc.samples {
				clk.SetTime(testNow.Add(s.at))
				p.Status.Autoscaling.StalledSince = nextStall(p.Status.Autoscaling, s.stalled, clk.Now())
				if i == 0 {
					firstStall = p.Status.Autoscaling.StalledSince
				}
				stall, recheck := observeQueueStall(p, grace, clk.Now())
				if (stall != nil) != tc.wantReported[i] {
					t.Errorf("after the sample at %s: reported %v, want %v", s.at, stall != nil, tc.wantReported[i])
				}
				if stall != nil && !stall.since.Equal(p.Status.Autoscaling.StalledSince.Time) {
					t.Errorf("stall since %v, want the first stalled sample's %v", stall.since, p.Status.Autoscaling.StalledSince)
				}
				// A stall not reported yet says when it will be, so that the reconciler looks again then.
				if s.stalled && stall == nil {
					want := p.Status.Autoscaling.StalledSince.Add(grace + 2*time.Second).Sub(clk.Now())
					if recheck != want {
						t.Errorf("after the sample at %s: recheck in %s, want %s", s.at, recheck, want)
					}
				}
			}
			if firstStall == nil || !firstStall.Time.Equal(testNow) {
				t.Errorf("the first stalled sample recorded %v, want %v", firstStall, testNow)
			}
		})
	}
}

func TestPipelineReportsABacklogNoWorkerConsumes(t *testing.T) {
	srv, ns, p := scalingPipeline(t, nil, func(o *Options) { o.QueueStallGrace = time.Second })
	markDeploymentRolledOut(t, ns, "orders-ingest")
	markDeploymentRolledOut(t, ns, "orders-inference")
	waitCondition(t, p, freightcastv1alpha1.ConditionReady, metav1.ConditionTrue, freightcastv1alpha1.ReasonPipelineReady)

	// The workers stop passing readiness (say, the node they ran on went away and their
	// replacements crash) while events keep arriving.
	setDeploymentStatus(t, ns, "orders-inference", "without a ready pod", func(d *appsv1.Deployment, n int32) appsv1.DeploymentStatus {
		return appsv1.DeploymentStatus{ObservedGeneration: d.Generation, Replicas: n, UpdatedReplicas: n}
	})
	publishEvents(t, jetStreamFor(t, srv.URL()), queue.TopologyFor(ns, "orders").Subject, "e", 50)
	// grace 1 s + 2 × 500 ms poll interval, then the next sample.
	waitCondition(t, p, freightcastv1alpha1.ConditionDegraded, metav1.ConditionTrue, freightcastv1alpha1.ReasonQueueStalled)
	waitCondition(t, p, freightcastv1alpha1.ConditionReady, metav1.ConditionFalse, freightcastv1alpha1.ReasonQueueStalled)
	waitEvent(t, p, corev1.EventTypeWarning, freightcastv1alpha1.ReasonQueueStalled)

	// A worker is ready again: the condition clears by itself.
	markDeploymentRolledOut(t, ns, "orders-inference")
	waitCondition(t, p, freightcastv1alpha1.ConditionDegraded, metav1.ConditionFalse, freightcastv1alpha1.ReasonAsExpected)
	waitCondition(t, p, freightcastv1alpha1.ConditionReady, metav1.ConditionTrue, freightcastv1alpha1.ReasonPipelineReady)
}

// TestAutoscalerSamplesOnAFakeClock drives the autoscaler's Reconcile by hand, as its workqueue
// would, on a real API server and a real nats-server but with time stepped by the test: one
// sample per call, a requeue after the poll interval, the pool sized through the scale
// subresource, the stall recorded in status — and a second autoscaler (a new leader) carrying on
// from the status: the last scale time, the stall, and a scale-down held for a stabilization
// window.
func TestAutoscalerSamplesOnAFakeClock(t *testing.T) {
	srv := natstest.Start(t)
	ns := newNamespace(t)
	ctx := context.Background()
	p := newPipeline(ns, "orders", "m") // defaults: poll every 2 s, 100 events per worker, 1 to 10
	mustCreate(t, p)
	labels := pipelineSelector(p, componentInference)
	pool := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: inferenceName(p)},
		Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](1), Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "worker", Image: testImage}}}}}}
	mustCreate(t, pool)
	js := jetStreamFor(t, srv.URL())
	if _, err := queue.Provision(ctx, js, spec.Queue(p, 1)); err != nil {
		t.Fatal(err)
	}
	connector := queue.NewConnector("autoscaler-test")
	t.Cleanup(connector.Close)
	clk := testingclock.NewFakeClock(testNow)
	newAutoscaler := func() *AutoscalerReconciler {
		m, err := metrics.NewAutoscaling(prometheus.NewRegistry())
		if err != nil {
			t.Fatal(err)
		}
		return &AutoscalerReconciler{Client: k8s, APIReader: k8s, Queue: connector, Recorder: events.NewFakeRecorder(100), Clock: clk,
			Metrics: m, Options: Options{DefaultNATSURL: srv.URL()}}
	}
	req := ctrl.Request{NamespacedName: client.ObjectKeyFromObject(p)}
	sample := func(a *AutoscalerReconciler) *freightcastv1alpha1.AutoscalingStatus {
		t.Helper()
		res, err := a.Reconcile(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		if res.RequeueAfter != 2*time.Second {
			t.Errorf("requeue after %s, want the poll interval", res.RequeueAfter)
		}
		if err := k8s.Get(ctx, req.NamespacedName, p); err != nil {
			t.Fatal(err)
		}
		if p.Status.Autoscaling == nil {
			t.Fatal("no status.autoscaling")
		}
		return p.Status.Autoscaling
	}
	poolSize := func() int32 {
		t.Helper()
		d, err := getDeployment(ns, pool.Name)
		if err != nil {
			t.Fatal(err)
		}
		return ptr.Deref(d.Spec.Replicas, 1)
	}

	a := newAutoscaler()
	if st := sample(a); st.QueueDepth == nil || *st.QueueDepth != 0 || st.CurrentReplicas != 1 || st.DesiredReplicas != 1 || st.StalledSince != nil {
		t.Fatalf("at rest: %+v", st)
	}

	// 500 events and no ready worker (envtest runs no pod): the HPA's default scale-up policy
	// allows +4 at once, and the backlog waits with no one to consume it.
	publishEvents(t, js, queue.TopologyFor(ns, "orders").Subject, "e", 500)
	clk.Step(2 * time.Second)
	scaledAt := clk.Now()
	st := sample(a)
	if poolSize() != 5 || st.DesiredReplicas != 5 || st.LastScaleTime == nil || !st.LastScaleTime.Time.Equal(scaledAt) {
		t.Fatalf("after 500 events: pool %d, status %+v; want 5, scaled at %v", poolSize(), st, scaledAt)
	}
	if st.StalledSince == nil || !st.StalledSince.Time.Equal(scaledAt) {
		t.Fatalf("stalledSince %v, want the first sample that saw the stall, %v", st.StalledSince, scaledAt)
	}

	// A new leader: a new autoscaler with nothing in memory carries on from the status.
	clk.Step(2 * time.Second)
	b := newAutoscaler()
	st = sample(b)
	if st.StalledSince == nil || !st.StalledSince.Time.Equal(scaledAt) || st.LastScaleTime == nil || !st.LastScaleTime.Time.Equal(scaledAt) {
		t.Fatalf("after a change of leader: %+v; want the stall and the last scale from %v kept", st, scaledAt)
	}

	// The backlog goes and the workers are ready: the stall ends at once, but the new
	// recommender holds the scale-down for the default 5-minute window from its first sample.
	stream, err := js.Stream(ctx, queue.TopologyFor(ns, "orders").Stream)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Purge(ctx); err != nil {
		t.Fatal(err)
	}
	markDeploymentRolledOut(t, ns, pool.Name)
	clk.Step(2 * time.Second)
	if st = sample(b); st.StalledSince != nil || poolSize() != 5 || !strings.Contains(st.Reason, "scale-down stabilized") {
		t.Fatalf("empty queue after a change of leader: pool %d, status %+v; want 5 held, no stall", poolSize(), st)
	}
	clk.Step(5 * time.Minute)
	if st = sample(b); poolSize() != 1 || st.DesiredReplicas != 1 {
		t.Fatalf("after the stabilization window: pool %d, status %+v; want 1", poolSize(), st)
	}
}

// TestAutoscalerWritesNoStatusOnAPipelineCreatedAgain: a sample computed from a cache that has not
// yet seen a pipeline deleted and created again under its name must not land on the new one (the
// API server applies a custom resource's status onto whatever object holds the name, whatever UID
// the request carries).
func TestAutoscalerWritesNoStatusOnAPipelineCreatedAgain(t *testing.T) {
	ns := newNamespace(t)
	ctx := context.Background()
	old := newPipeline(ns, "orders", "m")
	mustCreate(t, old)
	if err := k8s.Delete(ctx, old); err != nil {
		t.Fatal(err)
	}
	renewed := newPipeline(ns, "orders", "m")
	mustCreate(t, renewed)
	a := &AutoscalerReconciler{Client: k8s, APIReader: k8s}
	st := &freightcastv1alpha1.AutoscalingStatus{CurrentReplicas: 3, DesiredReplicas: 5}
	if err := a.writeStatus(ctx, &scaledPipeline{}, old, st, testNow); err != nil {
		t.Fatal(err)
	}
	if err := k8s.Get(ctx, client.ObjectKeyFromObject(renewed), renewed); err != nil {
		t.Fatal(err)
	}
	if renewed.Status.Autoscaling != nil {
		t.Errorf("the pipeline created again got the old one's autoscaling status: %+v", renewed.Status.Autoscaling)
	}
	// The object it was computed for still gets it.
	if err := a.writeStatus(ctx, &scaledPipeline{}, renewed, st, testNow); err != nil {
		t.Fatal(err)
	}
	if err := k8s.Get(ctx, client.ObjectKeyFromObject(renewed), renewed); err != nil {
		t.Fatal(err)
	}
	if got := renewed.Status.Autoscaling; got == nil || got.DesiredReplicas != 5 {
		t.Errorf("status.autoscaling of the live pipeline: %+v, want the sample's", got)
	}
}
