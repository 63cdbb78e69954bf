//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// leaseName is the manager's leader-election Lease (cmd/freightcast).
const leaseName = "freightcast-manager.freightcast.io"

// TestManagerRestartMidTraffic deletes every manager pod while events flow: the data plane keeps
// working without the operator, the new leader takes over, and nothing accepted is lost.
func TestManagerRestartMidTraffic(t *testing.T) {
	ns := newNamespace(t, "restart")
	deployModel(t, ns)
	applyYAML(t, ns, pipelineYAML("restart", 1, 4, "30s"))
	ingest, q := pipelineEndpoints(t, ns, "restart")
	ctx := context.Background()

	events := makeEvents("restart", 12000)
	done := make(chan error, 1)
	go func() { done <- sendConcurrently(ingest, events, 2, 200) }()
	time.Sleep(2 * time.Second)
	manager := &appsv1.Deployment{}
	if err := k8s.Get(ctx, client.ObjectKey{Namespace: systemNamespace, Name: managerName}, manager); err != nil {
		t.Fatal(err)
	}
	selector := client.MatchingLabels(manager.Spec.Selector.MatchLabels)
	old := &corev1.PodList{}
	if err := k8s.List(ctx, old, client.InNamespace(systemNamespace), selector); err != nil {
		t.Fatal(err)
	}
	oldPods := map[string]bool{}
	for _, p := range old.Items {
		oldPods[p.Name] = true
	}
	if err := k8s.DeleteAllOf(ctx, &corev1.Pod{}, client.InNamespace(systemNamespace), selector); err != nil {
		t.Fatal(err)
	}
	// The Lease's holder is "<pod name>_<uuid>": a new pod holding it is a new leader at work.
	took := eventually(t, 3*time.Minute, "a new manager pod leads", func() error {
		lease := &coordinationv1.Lease{}
		if err := k8s.Get(ctx, client.ObjectKey{Namespace: systemNamespace, Name: leaseName}, lease); err != nil {
			return err
		}
		holder := ""
		if lease.Spec.HolderIdentity != nil {
			holder, _, _ = strings.Cut(*lease.Spec.HolderIdentity, "_")
		}
		if holder == "" || oldPods[holder] {
			return fmt.Errorf("lease held by %q", holder)
		}
		return nil
	})
	timings.record("restart: all manager pods deleted to a new leader", took)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	waitAllPredicted(t, q, events, 0, 5*time.Minute)

	// The new leader acts on spec changes: one more ingestion replica.
	applyYAML(t, ns, strings.Replace(pipelineYAML("restart", 1, 4, "30s"), "replicas: 2", "replicas: 3", 1))
	took = eventually(t, 2*time.Minute, "new leader scales ingestion to 3", func() error {
		d := &appsv1.Deployment{}
		if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "restart-ingest"}, d); err != nil {
			return err
		}
		if d.Spec.Replicas == nil || *d.Spec.Replicas != 3 || d.Status.ReadyReplicas != 3 {
			return fmt.Errorf("ingestion replicas %v, %d ready", d.Spec.Replicas, d.Status.ReadyReplicas)
		}
		return nil
	})
	timings.record("restart: spec change (ingestion 2 to 3 replicas) applied by the new leader, pods Ready", took)
	waitPipelineReady(t, ns, "restart", time.Minute)
}
