//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	freightcastv1alpha1 "github.com/freightcast/freightcast/api/v1alpha1"
)

// TestHealing breaks one component at a time under a running pipeline and checks that the operator
// (or Kubernetes under the operator's settings) repairs it with no accepted event lost.
func TestHealing(t *testing.T) {
	ns := newNamespace(t, "healing")
	deployModel(t, ns)
	applyYAML(t, ns, pipelineYAML("heal", 2, 4, "5m"))
	ingest, q := pipelineEndpoints(t, ns, "heal")
	ctx := context.Background()
	total := 0
	// Predictions of everything sent so far must be there, each once.
	settle := func(events []freightEvent) {
		t.Helper()
		waitAllPredicted(t, q, events, total, 3*time.Minute)
		total += len(events)
	}
	before := makeEvents("heal-before", 2000)
	postEvents(t, ingest, before, 250)
	settle(before)

	t.Run("deleted inference Deployment", func(t *testing.T) {
		d := &appsv1.Deployment{}
		key := client.ObjectKey{Namespace: ns, Name: "heal-inference"}
		if err := k8s.Get(ctx, key, d); err != nil {
			t.Fatal(err)
		}
		oldUID := d.UID
		start := time.Now()
		if err := k8s.Delete(ctx, d, client.PropagationPolicy(metav1.DeletePropagationBackground)); err != nil {
			t.Fatal(err)
		}
		events := makeEvents("heal-deleted-deploy", 2000)
		postEvents(t, ingest, events, 250) // accepted while the pool is gone
		eventually(t, 2*time.Minute, "inference Deployment recreated with Ready pods", func() error {
			if err := k8s.Get(ctx, key, d); err != nil {
				return err
			}
			if d.UID == oldUID {
				return fmt.Errorf("still the old Deployment")
			}
			n, err := readyInferencePods(ctx, ns, "heal")
			if err != nil || n < 2 {
				return fmt.Errorf("%d Ready pods (%v)", n, err)
			}
			return nil
		})
		timings.record("healing: deleted inference Deployment back with 2 Ready pods", time.Since(start))
		settle(events)
	})

	t.Run("killed worker container", func(t *testing.T) {
		pod := inferencePod(t, ns, "heal")
		restarts := pod.Status.ContainerStatuses[0].RestartCount
		events := makeEvents("heal-killed-worker", 3000)
		done := make(chan error, 1)
		go func() { done <- sendEvents(ingest, events, 250) }()
		// Kill it mid-stream: once the pool has predicted some of these events.
		eventually(t, time.Minute, "the pool predicting the new events", func() error {
			p, _, _, err := q.counts(ctx)
			if err != nil || p <= uint64(total) {
				return fmt.Errorf("%d predictions (%v)", p, err)
			}
			return nil
		})
		killedAt := time.Now()
		killContainer(t, pod.Status.ContainerStatuses[0].ContainerID)
		took := eventually(t, 2*time.Minute, "killed worker restarted and Ready", func() error {
			p := &corev1.Pod{}
			if err := k8s.Get(ctx, client.ObjectKeyFromObject(pod), p); err != nil {
				return err
			}
			cs := p.Status.ContainerStatuses[0]
			if cs.RestartCount <= restarts || !cs.Ready {
				return fmt.Errorf("restarts %d, ready %v", cs.RestartCount, cs.Ready)
			}
			return nil
		})
		timings.record("healing: killed worker container restarted and Ready", took)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		settle(events)
		timings.record("healing: killed worker, kill to every event predicted once (ackWait 10s)", time.Since(killedAt))
	})

	t.Run("deleted NATS stream", func(t *testing.T) {
		if err := q.js.DeleteStream(ctx, q.tp.Stream); err != nil {
			t.Fatal(err)
		}
		took := eventually(t, 2*time.Minute, "stream and consumer re-provisioned", func() error {
			_, _, _, err := q.counts(ctx)
			return err
		})
		timings.record("healing: deleted NATS stream re-provisioned", took)
		// Ingestion answers 503 until the stream is back; the client contract is to retry.
		events := makeEvents("heal-deleted-stream", 2000)
		postEvents(t, ingest, events, 250)
		settle(events)
		waitPipelineReady(t, ns, "heal", time.Minute)
	})
}

// inferencePod returns a Ready pod of the pipeline's inference pool.
func inferencePod(t testing.TB, ns, pipeline string) *corev1.Pod {
	t.Helper()
	d := &appsv1.Deployment{}
	if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: pipeline + "-inference"}, d); err != nil {
		t.Fatal(err)
	}
	pods := &corev1.PodList{}
	if err := k8s.List(context.Background(), pods, client.InNamespace(ns), client.MatchingLabels(d.Spec.Selector.MatchLabels)); err != nil {
		t.Fatal(err)
	}
	for i := range pods.Items {
		p := &pods.Items[i]
		if p.DeletionTimestamp == nil && len(p.Status.ContainerStatuses) > 0 && p.Status.ContainerStatuses[0].Ready {
			return p
		}
	}
	t.Fatalf("no Ready inference pod of %s among %d pods", pipeline, len(pods.Items))
	return nil
}

// killContainer SIGKILLs a container's process through the cluster's containerd, as an OOM kill
// or a crash would end it.
func killContainer(t testing.TB, containerID string) {
	t.Helper()
	id := strings.TrimPrefix(containerID, "containerd://")
	dir := os.Getenv("FREIGHTCAST_CLUSTER_DIR")
	if dir == "" || id == containerID {
		t.Fatalf("cannot kill container %q: FREIGHTCAST_CLUSTER_DIR unset or not a containerd id", containerID)
	}
	out, err := exec.Command("ctr", "--address", filepath.Join(dir, "containerd", "containerd.sock"),
		"--namespace", "k8s.io", "tasks", "kill", "--signal", "SIGKILL", id).CombinedOutput()
	if err != nil {
		t.Fatalf("ctr tasks kill %s: %v: %s", id, err, out)
	}
}

// TestBrokenModelRollsBack points a serving model at a download that never succeeds: a transient
// failure as far as the pods can tell (exit 1, not the "cannot load" code), so they crash-loop
// until the progress deadline, and then the operator serves the last good revision again. A model
// the operator can read and refuse never gets that far (TestUnloadableModel).
func TestBrokenModelRollsBack(t *testing.T) {
	ns := newNamespace(t, "rollback")
	deployModel(t, ns)
	ctx := context.Background()
	m := &freightcastv1alpha1.PredictionModel{}
	key := client.ObjectKey{Namespace: ns, Name: "freight-delay-risk"}
	if err := k8s.Get(ctx, key, m); err != nil {
		t.Fatal(err)
	}
	goodDigest := m.Status.ModelDigest
	if goodDigest == "" {
		t.Fatal("a Ready model reports no digest")
	}
	infer := sampleInfer(t, exposeOnLoopback(t, ns, "freight-delay-risk-predictor", "http"))
	eventually(t, 30*time.Second, "OIP through the NodePort", infer)

	// Nothing listens on port 1 of the pod's own loopback: every start fails to download.
	patch := []byte(`{"spec":{"progressDeadlineSeconds":30,"version":"2","source":{"configMap":null,` +
		`"uri":"https://127.0.0.1:1/model.onnx","sha256":"` + strings.Repeat("0", 64) + `"}}}`)
	if err := k8s.Patch(ctx, m, client.RawPatch("application/merge-patch+json", patch)); err != nil {
		t.Fatal(err)
	}
	took := eventually(t, 3*time.Minute, "RolloutFailed reported and the last good revision served", func() error {
		if err := k8s.Get(ctx, key, m); err != nil {
			return err
		}
		c := condition(m.Status.Conditions, freightcastv1alpha1.ConditionDegraded)
		if c == nil || c.Status != metav1.ConditionTrue || c.Reason != freightcastv1alpha1.ReasonRolloutFailed {
			return fmt.Errorf("Degraded is %+v", c)
		}
		if m.Status.ModelDigest != goodDigest {
			return fmt.Errorf("serving digest %s, want the last good %s", m.Status.ModelDigest, goodDigest)
		}
		if err := waitDeploymentAvailable(ctxWithTimeout(2*time.Second), ns, "freight-delay-risk-predictor"); err != nil {
			return fmt.Errorf("serving Deployment not available: %w", err)
		}
		return nil
	})
	timings.record("healing: broken model rolled back (progress deadline 30s) and serving", took)
	if err := infer(); err != nil {
		t.Fatalf("after the rollback the model does not answer: %v", err)
	}
	evs := &eventsv1.EventList{}
	if err := k8s.List(ctx, evs, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, e := range evs.Items {
		found = found || (e.Reason == freightcastv1alpha1.EventReasonRolledBack && e.Regarding.Name == "freight-delay-risk")
	}
	if !found {
		t.Errorf("no %s event on the model", freightcastv1alpha1.EventReasonRolledBack)
	}
}
