package controllers

import (
	"context"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	testingclock "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	freightcastv1alpha1 "github.com/freightcast/freightcast/api/v1alpha1"
	"github.com/freightcast/freightcast/internal/testing/natstest"
	"github.com/freightcast/freightcast/internal/testing/testenv"
)

// reconcileCount reads controller-runtime's own reconcile counter for one controller.
func reconcileCount(t testing.TB, controller string) float64 {
	t.Helper()
	families, err := ctrlmetrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var total float64
	for _, f := range families {
		if f.GetName() != "controller_runtime_reconcile_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "controller" && l.GetValue() == controller {
					total += m.GetCounter().GetValue()
				}
			}
		}
	}
	return total
}

func TestReconcileOfUnchangedObjectsWritesNothing(t *testing.T) {
	srv := natstest.Start(t)
	ns := newNamespace(t)
	// A fake clock stands still: the autoscaler's status refresh never comes due, so once its
	// first sample is written it has nothing to write while the queue stays as it is.
	op := startOperatorWithClock(t, testingclock.NewFakeClock(time.Now()), srv.URL(), ns)
	ctx := context.Background()
	loadedModel(t, ns, "m")
	p := newPipeline(ns, "orders", "m")
	mustCreate(t, p)
	mustEventuallyGetDeployment(t, ns, "orders-ingest")
	markDeploymentRolledOut(t, ns, "orders-ingest")
	markDeploymentRolledOut(t, ns, "orders-inference")
	waitCondition(t, p, freightcastv1alpha1.ConditionReady, metav1.ConditionTrue, freightcastv1alpha1.ReasonPipelineReady)
	testenv.Eventually(t, 10*time.Second, "the autoscaler's first sample", func() error {
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(p), p); err != nil {
			return err
		}
		if p.Status.Autoscaling == nil {
			return fmt.Errorf("no status.autoscaling yet")
		}
		return nil
	})
	settled(t, op, "predictionmodel", "freightpipeline")
	modelRuns, pipelineRuns := reconcileCount(t, "predictionmodel"), reconcileCount(t, "freightpipeline")
	changed := time.Now()

	// A label added by someone else to a child wakes both controllers up without changing
	// anything they own.
	labelByHand(t, ns, "m-predictor", &corev1.Service{})
	labelByHand(t, ns, "orders-inference", &corev1.Service{})
	waitReconciles(t, "predictionmodel", modelRuns)
	waitReconciles(t, "freightpipeline", pipelineRuns)
	settled(t, op, "predictionmodel", "freightpipeline")
	if writes := op.writes.since(changed); len(writes) > 0 {
		t.Errorf("a reconcile of unchanged objects wrote to the API server: %v", writes)
	}
	// Nor did it tell of anything: no event was recorded after the change. (An event's time is
	// when the operator recorded it, whenever the broadcaster got to write it.)
	var list eventsv1.EventList
	if err := k8s.List(ctx, &list, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	for _, e := range list.Items {
		last := e.EventTime.Time
		if e.Series != nil {
			last = e.Series.LastObservedTime.Time
		}
		if !last.Before(changed) {
			t.Errorf("a reconcile of unchanged objects recorded an event: %s %s about %s: %s", e.Type, e.Reason, e.Regarding.Name, e.Note)
		}
	}
}

// settled waits until the controllers have nothing running and neither their reconciles nor the
// operator's writes have moved for a second: what a write already under way or an item ready in a
// queue (taken at once by an idle worker) would disturb. workqueue_depth is not read: its gauges
// are the process's, one per queue name, shared with the queues of every earlier test's manager,
// and they drift (seen: 1 left by a stopped manager, and -5).
func settled(t *testing.T, op *operator, controllers ...string) {
	t.Helper()
	const quiet = time.Second
	type look struct {
		reconciles float64
		writes     int
	}
	var last look
	var since time.Time
	testenv.Eventually(t, 30*time.Second, fmt.Sprintf("controllers %v idle for %s", controllers, quiet), func() error {
		now := look{writes: len(op.writes.snapshot())}
		for _, c := range controllers {
			if v, _ := metricValue(t, "controller_runtime_active_workers", map[string]string{"controller": c}); v != 0 {
				since = time.Time{}
				return fmt.Errorf("%s has %v reconciles running", c, v)
			}
			now.reconciles += reconcileCount(t, c)
		}
		if since.IsZero() || now != last {
			last, since = now, time.Now()
			return fmt.Errorf("reconciles or writes moved")
		}
		if time.Since(since) < quiet {
			return fmt.Errorf("quiet for %s only", time.Since(since).Round(time.Millisecond))
		}
		return nil
	})
}

// metricValue reads one series of the operator's registry: a gauge's or a counter's value, and
// whether the series exists.
func metricValue(t testing.TB, name string, labels map[string]string) (float64, bool) {
	t.Helper()
	families, err := ctrlmetrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	series:
		for _, m := range f.GetMetric() {
			have := map[string]string{}
			for _, l := range m.GetLabel() {
				have[l.GetName()] = l.GetValue()
			}
			for k, v := range labels {
				if have[k] != v {
					continue series
				}
			}
			if m.GetCounter() != nil {
				return m.GetCounter().GetValue(), true
			}
			return m.GetGauge().GetValue(), true
		}
	}
	return 0, false
}

// waitConditionMetric waits until freightcast_condition of the object's condType is want.
func waitConditionMetric(t *testing.T, kind, ns, name, condType string, want float64) {
	t.Helper()
	labels := map[string]string{"kind": kind, "namespace": ns, "name": name, "type": condType}
	testenv.Eventually(t, 10*time.Second, fmt.Sprintf("freightcast_condition%v = %v", labels, want), func() error {
		if v, ok := metricValue(t, "freightcast_condition", labels); !ok || v != want {
			return fmt.Errorf("%v (exported: %v)", v, ok)
		}
		return nil
	})
}

// labelByHand adds a label to the child ns/name as someone other than the operator would: a
// change that wakes its controller and that the controller does not own.
func labelByHand(t testing.TB, ns, name string, obj client.Object) {
	t.Helper()
	ctx := context.Background()
	if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, obj); err != nil {
		t.Fatal(err)
	}
	labels := obj.GetLabels()
	labels["team"] = "freight-ml"
	obj.SetLabels(labels)
	if err := k8s.Update(ctx, obj, client.FieldOwner("someone-else")); err != nil {
		t.Fatal(err)
	}
}

// waitReconciles waits until controller has finished more reconciles than before.
func waitReconciles(t *testing.T, controller string, before float64) {
	t.Helper()
	testenv.Eventually(t, 10*time.Second, controller+" reconciled again", func() error {
		if now := reconcileCount(t, controller); now <= before {
			return fmt.Errorf("%v reconciles, as before", now)
		}
		return nil
	})
}
