package controllers

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlevent "sigs.k8s.io/controller-runtime/pkg/event"

	freightcastv1alpha1 "github.com/freightcast/freightcast/api/v1alpha1"
	"github.com/freightcast/freightcast/internal/event"
	"github.com/freightcast/freightcast/internal/metrics"
	"github.com/freightcast/freightcast/internal/model"
	"github.com/freightcast/freightcast/internal/queue"
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
	outInfo, err := out.Info(ctx, jetstream.WithSubjectFilter(topo.DeadLetterSubject))
	if err != nil {
		t.Fatal(err)
	}
	if dl := outInfo.State.Subjects[topo.DeadLetterSubject]; dl != 0 {
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

func TestNoteStall(t *testing.T) {
	const interval = time.Second
	type sample struct {
		at      time.Duration // since the first sample
		stalled bool
	}
	cases := map[string]struct {
		samples      []sample
		wantReported bool
		wantWakes    int
	}{
		"a backlog that a worker picks up within the threshold is never reported": {
			samples: []sample{{0, true}, {time.Second, true}, {2 * time.Second, false}},
		},
		"a backlog with no ready worker past grace + 2 intervals is reported once": {
			samples:      []sample{{0, true}, {5 * time.Second, true}, {12 * time.Second, true}, {13 * time.Second, true}},
			wantReported: true,
			wantWakes:    1,
		},
		"a reported stall that ends wakes the reconcile again": {
			samples:   []sample{{0, true}, {12 * time.Second, true}, {13 * time.Second, false}},
			wantWakes: 2,
		},
		"a stall that ends restarts the clock": {
			samples: []sample{{0, true}, {11 * time.Second, false}, {12 * time.Second, true}, {20 * time.Second, true}},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			wake := make(chan ctrlevent.GenericEvent, 10)
			a := &Autoscaler{StallGrace: 10 * time.Second, Wake: wake}
			key := types.NamespacedName{Namespace: "ns", Name: "orders"}
			sp := &scaledPipeline{key: key}
			a.tracked = map[types.NamespacedName]*scaledPipeline{key: sp}
			p := newPipeline("ns", "orders", "m")
			for _, s := range tc.samples {
				a.noteStall(sp, p, s.stalled, testNow.Add(s.at), interval)
			}
			got := a.Stall(key)
			if (got != nil) != tc.wantReported || len(wake) != tc.wantWakes {
				t.Errorf("reported stall %+v, %d wake-ups; want reported %v, %d wake-ups", got, len(wake), tc.wantReported, tc.wantWakes)
			}
			if got != nil && !got.since.Equal(testNow) {
				t.Errorf("stall since %v, want the first sample's %v", got.since, testNow)
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
