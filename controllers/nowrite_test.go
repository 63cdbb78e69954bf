package controllers

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	freightcastv1alpha1 "github.com/freightcast/freightcast/api/v1alpha1"
	"github.com/freightcast/freightcast/internal/testing/natstest"
	"github.com/freightcast/freightcast/internal/testing/testenv"
)

// reconcileCount reads controller-runtime's own reconcile counter for one controller.
func reconcileCount(t *testing.T, controller string) float64 {
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
	op := startOperator(t, srv.URL(), ns)
	ctx := context.Background()
	loadedModel(t, ns, "m")
	p := newPipeline(ns, "orders", "m")
	mustCreate(t, p)
	mustEventuallyGetDeployment(t, ns, "orders-ingest")
	markDeploymentRolledOut(t, ns, "orders-ingest")
	markDeploymentRolledOut(t, ns, "orders-inference")
	waitCondition(t, p, freightcastv1alpha1.ConditionReady, metav1.ConditionTrue, freightcastv1alpha1.ReasonPipelineReady)
	// The autoscaler writes status.autoscaling once after its first sample (within a poll
	// interval), then only when its decision changes: wait for that first write.
	testenv.Eventually(t, 10*time.Second, "the autoscaler's first sample", func() error {
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(p), p); err != nil {
			return err
		}
		if p.Status.Autoscaling == nil {
			return fmt.Errorf("no status.autoscaling yet")
		}
		return nil
	})
	// Let the last status writes and their watch events settle: wait for a second in which the
	// operator writes nothing, however long a loaded machine takes to get there.
	before := op.writes.snapshot()
	testenv.Eventually(t, 30*time.Second, "a second without writes", func() error {
		time.Sleep(time.Second)
		if now := op.writes.snapshot(); !cmp.Equal(before, now) {
			before = now
			return fmt.Errorf("the operator is still writing")
		}
		return nil
	})
	modelRuns, pipelineRuns := reconcileCount(t, "predictionmodel"), reconcileCount(t, "freightpipeline")

	// A label added by someone else to a child wakes both controllers up without changing
	// anything they own.
	for _, name := range []string{"m-predictor", "orders-inference"} {
		svc := &corev1.Service{}
		if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, svc); err != nil {
			t.Fatal(err)
		}
		svc.Labels["team"] = "freight-ml"
		if err := k8s.Update(ctx, svc, client.FieldOwner("someone-else")); err != nil {
			t.Fatal(err)
		}
	}
	testenv.Eventually(t, 10*time.Second, "both controllers reconciled again", func() error {
		if reconcileCount(t, "predictionmodel") <= modelRuns || reconcileCount(t, "freightpipeline") <= pipelineRuns {
			return fmt.Errorf("reconciles: model %v→%v, pipeline %v→%v", modelRuns, reconcileCount(t, "predictionmodel"),
				pipelineRuns, reconcileCount(t, "freightpipeline"))
		}
		return nil
	})
	time.Sleep(500 * time.Millisecond)
	if diff := cmp.Diff(before, op.writes.snapshot()); diff != "" {
		t.Errorf("a reconcile of unchanged objects wrote to the API server (-before +after):\n%s", diff)
	}
}

// metricValue reads one series of the operator's registry: a gauge's or a counter's value, and
// whether the series exists.
func metricValue(t *testing.T, name string, labels map[string]string) (float64, bool) {
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
