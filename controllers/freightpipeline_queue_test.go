package controllers

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	testingclock "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	freightcastv1alpha1 "github.com/freightcast/freightcast/api/v1alpha1"
	"github.com/freightcast/freightcast/internal/queue"
	"github.com/freightcast/freightcast/internal/testing/natstest"
	"github.com/freightcast/freightcast/internal/testing/testenv"
)

// smallPipeline is a pipeline whose three streams reserve 1 MiB each per replica.
func smallPipeline(ns, name, model string, policy freightcastv1alpha1.QueueDeletionPolicy) *freightcastv1alpha1.FreightPipeline {
	p := newPipeline(ns, name, model)
	p.Spec.Queue.MaxBytes = ptr.To(resource.MustParse("1Mi"))
	p.Spec.Queue.DeletionPolicy = policy
	return p
}

// waitGone waits until the pipeline no longer exists.
func waitGone(t testing.TB, p client.Object, timeout time.Duration) {
	t.Helper()
	testenv.Eventually(t, timeout, p.GetName()+" gone", func() error {
		err := k8s.Get(context.Background(), client.ObjectKeyFromObject(p), &freightcastv1alpha1.FreightPipeline{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("still there (%v)", err)
	})
}

// streamsOf reports which of the pipeline's three streams exist on the server.
func streamsOf(t testing.TB, js jetstream.JetStream, ns, name string) []string {
	t.Helper()
	topo := queue.TopologyFor(ns, name)
	var out []string
	for _, s := range []string{topo.Stream, topo.OutputStream, topo.BucketStream()} {
		_, err := js.Stream(context.Background(), s)
		switch {
		case err == nil:
			out = append(out, s)
		case !errors.Is(err, jetstream.ErrStreamNotFound):
			t.Fatal(err)
		}
	}
	return out
}

// TestQueueCapacityAndDeletion fills a small store with pipelines: the one that does not fit
// reports InsufficientStorage with the numbers and creates nothing; deleting one with
// deletionPolicy Delete frees its room, and the waiting pipeline provisions by itself.
func TestQueueCapacityAndDeletion(t *testing.T) {
	const store = 7 << 20 // two pipelines of 3 × 1 MiB, not three
	srv := natstest.Start(t, natstest.WithMaxStore(store))
	ns := newNamespace(t)
	startOperator(t, srv.URL(), ns, func(o *Options) { o.NATSStore = queue.StoreLimit{PerServer: store, Servers: 1} })
	js := jetStreamFor(t, srv.URL())
	loadedModel(t, ns, "m")

	first, second, third := smallPipeline(ns, "first", "m", ""), smallPipeline(ns, "second", "m", ""), smallPipeline(ns, "third", "m", "")
	mustCreate(t, first, second)
	waitCondition(t, first, freightcastv1alpha1.ConditionQueueReady, metav1.ConditionTrue, freightcastv1alpha1.ReasonQueueProvisioned)
	waitCondition(t, second, freightcastv1alpha1.ConditionQueueReady, metav1.ConditionTrue, freightcastv1alpha1.ReasonQueueProvisioned)
	if first.Status.Queue == nil || first.Status.Queue.ReservedBytes != 3<<20 || first.Status.Queue.Replicas != 1 || first.Status.Queue.Leader == "" {
		t.Errorf("status.queue %+v, want 1 replica with a leader and 3 MiB reserved", first.Status.Queue)
	}
	if !slicesContain(first.Finalizers, queueFinalizer) {
		t.Errorf("finalizers %v: deletionPolicy Delete (the default) needs %s", first.Finalizers, queueFinalizer)
	}

	collector := &capacityCollector{reader: k8s, queue: queue.NewConnector("capacity-test"),
		opts: Options{DefaultNATSURL: srv.URL(), NATSStore: queue.StoreLimit{PerServer: store, Servers: 1}}}
	label := "nats=" + srv.URL()
	for metric, want := range map[string]float64{"freightcast_queue_store_limit_bytes": store, "freightcast_queue_store_reserved_bytes": 6 << 20,
		"freightcast_queue_store_available_bytes": 1 << 20, "freightcast_queue_store_up": 1} {
		if got := gatherGauges(t, collector, metric)[label]; got != want {
			t.Errorf("%s = %v, want %v", metric, got, want)
		}
	}

	mustCreate(t, third)
	waitCondition(t, third, freightcastv1alpha1.ConditionQueueReady, metav1.ConditionFalse, freightcastv1alpha1.ReasonInsufficientStorage)
	msg := meta.FindStatusCondition(third.Status.Conditions, freightcastv1alpha1.ConditionQueueReady).Message
	for _, want := range []string{"needs 3 MiB", "1 MiB × 1 replica", "has 1 MiB free", "max_file_store of 7 MiB on each of 1 server(s)", srv.URL()} {
		if !strings.Contains(msg, want) {
			t.Errorf("InsufficientStorage message lacks %q: %s", want, msg)
		}
	}
	waitCondition(t, third, freightcastv1alpha1.ConditionDegraded, metav1.ConditionTrue, freightcastv1alpha1.ReasonInsufficientStorage)
	if got := streamsOf(t, js, ns, "third"); len(got) != 0 {
		t.Errorf("the pipeline that does not fit left streams behind: %v", got)
	}

	if err := k8s.Delete(context.Background(), first); err != nil {
		t.Fatal(err)
	}
	waitGone(t, first, 15*time.Second)
	if got := streamsOf(t, js, ns, "first"); len(got) != 0 {
		t.Errorf("deletionPolicy Delete left streams: %v", got)
	}
	// Within queueRetryInterval the waiting pipeline finds the room.
	testenv.Eventually(t, 3*queueRetryInterval, "third provisioned", func() error {
		if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(third), third); err != nil {
			return err
		}
		if c := meta.FindStatusCondition(third.Status.Conditions, freightcastv1alpha1.ConditionQueueReady); c == nil || c.Status != metav1.ConditionTrue {
			return fmt.Errorf("QueueReady %+v", c)
		}
		return nil
	})
	if got := streamsOf(t, js, ns, "third"); len(got) != 3 {
		t.Errorf("third's streams: %v", got)
	}
}

func slicesContain(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// TestQueueRetainedAndAdopted deletes a pipeline with deletionPolicy Retain while events wait:
// it goes at once, its streams and events stay and show as orphaned, and a pipeline created
// again with its name adopts them, events included.
func TestQueueRetainedAndAdopted(t *testing.T) {
	srv := natstest.Start(t)
	ns := newNamespace(t)
	startOperator(t, srv.URL(), ns)
	js := jetStreamFor(t, srv.URL())
	loadedModel(t, ns, "m")
	kept := smallPipeline(ns, "kept", "m", freightcastv1alpha1.QueueRetain)
	mustCreate(t, kept)
	waitCondition(t, kept, freightcastv1alpha1.ConditionQueueReady, metav1.ConditionTrue, freightcastv1alpha1.ReasonQueueProvisioned)
	if slicesContain(kept.Finalizers, queueFinalizer) {
		t.Errorf("finalizers %v: Retain needs none", kept.Finalizers)
	}
	publishEvents(t, js, queue.TopologyFor(ns, "kept").Subject, "kept", 5)
	if err := k8s.Delete(context.Background(), kept); err != nil {
		t.Fatal(err)
	}
	waitGone(t, kept, 15*time.Second)

	// The collector lists the retained streams as orphans, with what they reserve.
	collector := &capacityCollector{reader: k8s, queue: queue.NewConnector("capacity-test"), opts: Options{DefaultNATSURL: srv.URL()}}
	orphans := gatherGauges(t, collector, "freightcast_queue_orphaned_stream_reserved_bytes")
	topo := queue.TopologyFor(ns, "kept")
	for _, s := range []string{topo.Stream, topo.OutputStream, topo.BucketStream()} {
		key := fmt.Sprintf("namespace=%s,nats=%s,pipeline=kept,stream=%s", ns, srv.URL(), s)
		if orphans[key] != 1<<20 {
			t.Errorf("orphan %s: %v, want 1 MiB; all: %v", s, orphans[key], orphans)
		}
	}

	again := smallPipeline(ns, "kept", "m", freightcastv1alpha1.QueueRetain)
	mustCreate(t, again)
	waitCondition(t, again, freightcastv1alpha1.ConditionQueueReady, metav1.ConditionTrue, freightcastv1alpha1.ReasonQueueProvisioned)
	waitEvent(t, again, corev1.EventTypeNormal, freightcastv1alpha1.EventReasonQueueAdopted)
	s, err := js.Stream(context.Background(), topo.Stream)
	if err != nil || s.CachedInfo().State.Msgs != 5 {
		t.Fatalf("the adopted stream: %v, want the 5 events", err)
	}
	if orphans := gatherGauges(t, collector, "freightcast_queue_orphaned_stream_reserved_bytes"); len(orphans) != 0 {
		t.Errorf("adopted streams still listed as orphans: %v", orphans)
	}
}

// TestQueueDeletionWaitsForPendingEvents deletes a pipeline whose events wait: ingestion is
// stopped, the deletion holds with QueueReady=False PendingEvents and a Warning event, and goes
// through once the spec allows dropping them.
func TestQueueDeletionWaitsForPendingEvents(t *testing.T) {
	srv := natstest.Start(t)
	ns := newNamespace(t)
	startOperator(t, srv.URL(), ns)
	js := jetStreamFor(t, srv.URL())
	loadedModel(t, ns, "m")
	p := smallPipeline(ns, "held", "m", freightcastv1alpha1.QueueDelete)
	mustCreate(t, p)
	waitCondition(t, p, freightcastv1alpha1.ConditionQueueReady, metav1.ConditionTrue, freightcastv1alpha1.ReasonQueueProvisioned)
	mustEventuallyGetDeployment(t, ns, "held-ingest")
	publishEvents(t, js, queue.TopologyFor(ns, "held").Subject, "held", 3)
	if err := k8s.Delete(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	waitCondition(t, p, freightcastv1alpha1.ConditionQueueReady, metav1.ConditionFalse, freightcastv1alpha1.ReasonPendingEvents)
	waitEvent(t, p, corev1.EventTypeWarning, freightcastv1alpha1.EventReasonQueueDeletionWaiting)
	if c := meta.FindStatusCondition(p.Status.Conditions, freightcastv1alpha1.ConditionReady); c == nil || c.Reason != freightcastv1alpha1.ReasonPendingEvents {
		t.Errorf("Ready %+v, want False PendingEvents", c)
	}
	if _, err := getDeployment(ns, "held-ingest"); !apierrors.IsNotFound(err) {
		t.Errorf("the ingestion Deployment still exists while the deletion waits (%v): events could keep arriving", err)
	}
	if got := streamsOf(t, js, ns, "held"); len(got) != 3 {
		t.Errorf("streams while waiting: %v", got)
	}

	mustUpdate(t, p, func() { p.Spec.Queue.PendingEventsOnDelete = freightcastv1alpha1.PendingEventsDrop })
	waitGone(t, p, 15*time.Second)
	if got := streamsOf(t, js, ns, "held"); len(got) != 0 {
		t.Errorf("streams after Drop: %v", got)
	}
}

// TestQueueDeletionDoesNotWedge: a NATS that does not answer holds a deletion only until the
// deletion timeout (on the operator's clock), and a namespace being deleted does not wait for
// events nothing will predict; in both cases the streams stay on NATS.
func TestQueueDeletionDoesNotWedge(t *testing.T) {
	t.Run("NATS unreachable", func(t *testing.T) {
		srv := natstest.Start(t)
		ns := newNamespace(t)
		clk := testingclock.NewFakeClock(time.Now())
		startOperatorWithClock(t, clk, srv.URL(), ns, func(o *Options) { o.QueueDeletionTimeout = time.Minute })
		loadedModel(t, ns, "m")
		p := smallPipeline(ns, "lost", "m", freightcastv1alpha1.QueueDelete)
		mustCreate(t, p)
		waitCondition(t, p, freightcastv1alpha1.ConditionQueueReady, metav1.ConditionTrue, freightcastv1alpha1.ReasonQueueProvisioned)
		srv.Stop()
		if err := k8s.Delete(context.Background(), p); err != nil {
			t.Fatal(err)
		}
		waitCondition(t, p, freightcastv1alpha1.ConditionQueueReady, metav1.ConditionFalse, freightcastv1alpha1.ReasonQueueUnreachable)
		// Held for as long as the clock stands still.
		if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(p), p); err != nil {
			t.Fatalf("the pipeline went before the timeout: %v", err)
		}
		clk.Step(time.Minute)
		// The next retry (queueRetryInterval at most) sees the timeout passed.
		waitGone(t, p, 3*queueRetryInterval)
	})
	t.Run("inference pool gone with events pending", func(t *testing.T) {
		srv := natstest.Start(t)
		ns := newNamespace(t)
		startOperator(t, srv.URL(), ns)
		js := jetStreamFor(t, srv.URL())
		loadedModel(t, ns, "m")
		p := smallPipeline(ns, "foreground", "m", freightcastv1alpha1.QueueDelete)
		mustCreate(t, p)
		waitCondition(t, p, freightcastv1alpha1.ConditionQueueReady, metav1.ConditionTrue, freightcastv1alpha1.ReasonQueueProvisioned)
		publishEvents(t, js, queue.TopologyFor(ns, "foreground").Subject, "foreground", 2)
		pool := mustEventuallyGetDeployment(t, ns, "foreground-inference")
		if err := k8s.Delete(context.Background(), p); err != nil {
			t.Fatal(err)
		}
		waitCondition(t, p, freightcastv1alpha1.ConditionQueueReady, metav1.ConditionFalse, freightcastv1alpha1.ReasonPendingEvents)
		// A foreground deletion's garbage collector (envtest runs none) deletes the pool while
		// its owner waits.
		if err := k8s.Delete(context.Background(), pool); err != nil {
			t.Fatal(err)
		}
		waitGone(t, p, 15*time.Second)
		if got := streamsOf(t, js, ns, "foreground"); len(got) != 3 {
			t.Errorf("pending events with Wait are never dropped: streams %v, want all 3 kept", got)
		}
	})
	t.Run("namespace deleted with events pending", func(t *testing.T) {
		srv := natstest.Start(t)
		ns := newNamespace(t)
		startOperator(t, srv.URL(), ns)
		js := jetStreamFor(t, srv.URL())
		loadedModel(t, ns, "m")
		p := smallPipeline(ns, "orphaned", "m", freightcastv1alpha1.QueueDelete)
		mustCreate(t, p)
		waitCondition(t, p, freightcastv1alpha1.ConditionQueueReady, metav1.ConditionTrue, freightcastv1alpha1.ReasonQueueProvisioned)
		publishEvents(t, js, queue.TopologyFor(ns, "orphaned").Subject, "orphaned", 2)
		// envtest runs no namespace controller: the namespace stays Terminating, and the
		// pipeline is deleted by hand as that controller would.
		if err := k8s.Delete(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			t.Fatal(err)
		}
		if err := k8s.Delete(context.Background(), p); err != nil {
			t.Fatal(err)
		}
		waitGone(t, p, 15*time.Second)
		if got := streamsOf(t, js, ns, "orphaned"); len(got) != 3 {
			t.Errorf("pending events with Wait are never dropped: streams %v, want all 3 kept", got)
		}
	})
}

// TestQueueReplication runs pipelines on a 3-server JetStream cluster: the operator's default
// replicas apply, status.queue shows the leader and replicas, a change of spec.queue.replicas
// rescales the streams in place, and a pipeline asking for more servers than there are says so.
func TestQueueReplication(t *testing.T) {
	cluster := natstest.StartCluster(t, 3)
	ns := newNamespace(t)
	startOperator(t, cluster.URL(), ns, func(o *Options) { o.DefaultQueueReplicas = 3 })
	js := jetStreamFor(t, cluster.URL())
	loadedModel(t, ns, "m")
	p := smallPipeline(ns, "replicated", "m", "")
	mustCreate(t, p)
	waitQueueStatus(t, p, 3)
	for _, name := range streamsOf(t, js, ns, "replicated") {
		s, err := js.Stream(context.Background(), name)
		if err != nil || s.CachedInfo().Config.Replicas != 3 {
			t.Errorf("stream %s: %v, want 3 replicas", name, err)
		}
	}
	if p.Status.Queue.ReservedBytes != 9<<20 {
		t.Errorf("reservedBytes %d, want 3 streams × 1 MiB × 3 replicas", p.Status.Queue.ReservedBytes)
	}

	mustUpdate(t, p, func() { p.Spec.Queue.Replicas = ptr.To[int32](1) })
	waitQueueStatus(t, p, 1)
	waitEvent(t, p, corev1.EventTypeNormal, freightcastv1alpha1.EventReasonQueueRescaled)

	five := smallPipeline(ns, "five", "m", "")
	five.Spec.Queue.Replicas = ptr.To[int32](5)
	mustCreate(t, five)
	waitCondition(t, five, freightcastv1alpha1.ConditionQueueReady, metav1.ConditionFalse, freightcastv1alpha1.ReasonNotEnoughServers)
}

// waitQueueStatus waits until status.queue reports replicas, a leader and nothing lagging, and
// QueueReady is True Provisioned.
func waitQueueStatus(t testing.TB, p *freightcastv1alpha1.FreightPipeline, replicas int32) {
	t.Helper()
	testenv.Eventually(t, 60*time.Second, fmt.Sprintf("%s at %d replicas", p.Name, replicas), func() error {
		if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(p), p); err != nil {
			return err
		}
		q := p.Status.Queue
		if q == nil || q.Replicas != replicas || q.Leader == "" || len(q.LaggingReplicas) > 0 {
			return fmt.Errorf("status.queue %+v", q)
		}
		if c := meta.FindStatusCondition(p.Status.Conditions, freightcastv1alpha1.ConditionQueueReady); c == nil || c.Reason != freightcastv1alpha1.ReasonQueueProvisioned {
			return fmt.Errorf("QueueReady %+v", c)
		}
		return nil
	})
}

// gatherGauges collects c and returns the values of the gauge name by their labels.
func gatherGauges(t testing.TB, c prometheus.Collector, name string) map[string]float64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(c); err != nil {
		t.Fatal(err)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			out[labelsOf(m)] = m.GetGauge().GetValue()
		}
	}
	return out
}

func labelsOf(m *dto.Metric) string {
	var parts []string
	for _, l := range m.GetLabel() {
		parts = append(parts, l.GetName()+"="+l.GetValue())
	}
	return strings.Join(parts, ",")
}
