//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// applyYAML applies a manifest given as text into ns.
func applyYAML(t testing.TB, ns, manifest string) {
	t.Helper()
	cmd := exec.Command(kubectlBin, "apply", "-n", ns, "-f", "-")
	cmd.Stdin = strings.NewReader(manifest)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("kubectl apply: %v: %s\n%s", err, out, manifest)
	}
}

// deployModel applies the sample model (its ConfigMap and PredictionModel) into ns and waits for it.
func deployModel(t testing.TB, ns string) {
	t.Helper()
	applyFile(t, ns,
		filepath.Join(repoRoot, "config", "samples", "freightcast_v1alpha1_model_configmap.yaml"),
		filepath.Join(repoRoot, "config", "samples", "freightcast_v1alpha1_predictionmodel.yaml"))
	waitModelReady(t, ns, "freight-delay-risk", 3*time.Minute)
}

// pipelineYAML is a pipeline over the sample model whose workers are held to a small CPU share,
// so that a burst outruns the minimum pool on purpose.
func pipelineYAML(name string, minReplicas, maxReplicas int, scaleDownWindow string) string {
	return fmt.Sprintf(`apiVersion: freightcast.io/v1alpha1
kind: FreightPipeline
metadata:
  name: %s
spec:
  modelRef:
    name: freight-delay-risk
  queue:
    # Short, so that events held by a killed worker come back quickly.
    ackWait: 10s
    maxDeliver: 5
  ingestion:
    replicas: 2
    resources:
      requests: {cpu: 50m, memory: 64Mi}
      limits: {memory: 256Mi}
  inference:
    minReplicas: %d
    maxReplicas: %d
    targetQueueDepthPerReplica: 300
    pollInterval: 1s
    batchSize: 64
    scaleUp:
      stabilizationWindow: 0s
      policies:
      - {type: Pods, value: 4, period: 5s}
    scaleDown:
      stabilizationWindow: %s
      policies:
      - {type: Percent, value: 100, period: 5s}
    resources:
      requests: {cpu: 100m, memory: 64Mi}
      limits: {cpu: 250m, memory: 256Mi}
`, name, minReplicas, maxReplicas, scaleDownWindow)
}

// pipelineEndpoints waits for the pipeline and returns loopback addresses of its ingestion Service
// and of the in-cluster NATS.
func pipelineEndpoints(t testing.TB, ns, name string) (ingest string, q *queueClient) {
	t.Helper()
	waitPipelineReady(t, ns, name, 3*time.Minute)
	ingest = exposeOnLoopback(t, ns, name+"-ingest", "http")
	natsAddr := exposeOnLoopback(t, systemNamespace, "nats", "client")
	q = newQueueClient(t, natsAddr, ns, name)
	eventually(t, 30*time.Second, "the pipeline's queue through the NATS NodePort", func() error {
		_, _, _, err := q.counts(context.Background())
		return err
	})
	return ingest, q
}

// readyInferencePods counts Running and Ready pods of the pipeline's inference Deployment.
func readyInferencePods(ctx context.Context, ns, pipeline string) (int, error) {
	d := &appsv1.Deployment{}
	if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: pipeline + "-inference"}, d); err != nil {
		return 0, err
	}
	pods := &corev1.PodList{}
	if err := k8s.List(ctx, pods, client.InNamespace(ns), client.MatchingLabels(d.Spec.Selector.MatchLabels)); err != nil {
		return 0, err
	}
	n := 0
	for _, p := range pods.Items {
		if p.Status.Phase != corev1.PodRunning || p.DeletionTimestamp != nil {
			continue
		}
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
				n++
			}
		}
	}
	return n, nil
}

func inferenceReplicas(ctx context.Context, ns, pipeline string) (int32, error) {
	d := &appsv1.Deployment{}
	if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: pipeline + "-inference"}, d); err != nil {
		return 0, err
	}
	if d.Spec.Replicas == nil {
		return 1, nil
	}
	return *d.Spec.Replicas, nil
}

// TestBurstScalesInferencePool sends a burst the one-pod minimum cannot absorb: the pool must grow
// with pods really Running, every event must be predicted exactly once, and the pool must shrink
// back to its minimum after the burst.
func TestBurstScalesInferencePool(t *testing.T) {
	ns := newNamespace(t, "scaling")
	deployModel(t, ns)
	applyYAML(t, ns, pipelineYAML("burst", 1, 4, "10s"))
	ingest, q := pipelineEndpoints(t, ns, "burst")

	const burst = 30000
	events := makeEvents("burst", burst)
	ctx := context.Background()
	start := time.Now()
	sent := make(chan error, 1)
	go func() { sent <- sendConcurrently(ingest, events, 4, 500) }()
	// The pool's size over the whole burst: it must never pass maxReplicas.
	sampling, peak := make(chan struct{}), make(chan int32, 1)
	go func() {
		var most int32
		defer func() { peak <- most }()
		for {
			if r, err := inferenceReplicas(ctx, ns, "burst"); err == nil {
				most = max(most, r)
			}
			select {
			case <-sampling:
				return
			case <-time.After(200 * time.Millisecond):
			}
		}
	}()

	scaledUp := eventually(t, 2*time.Minute, "more than one Ready inference pod", func() error {
		n, err := readyInferencePods(ctx, ns, "burst")
		if err != nil {
			return err
		}
		if n < 2 {
			return fmt.Errorf("%d Ready inference pods", n)
		}
		return nil
	})
	timings.record("scaling: burst start to a second Ready inference pod", scaledUp)
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	t.Logf("%d events accepted in %s", burst, time.Since(start))
	waitAllPredicted(t, q, events, 0, 5*time.Minute)
	timings.record(fmt.Sprintf("scaling: burst of %d events, start to all predicted exactly once", burst), time.Since(start))
	close(sampling)
	most := <-peak
	t.Logf("largest pool during the burst: %d replicas", most)
	if most > 4 {
		t.Errorf("the pool reached %d replicas, above maxReplicas 4", most)
	}

	drainedAt := time.Now()
	eventually(t, 3*time.Minute, "pool back to its minimum", func() error {
		r, err := inferenceReplicas(ctx, ns, "burst")
		if err != nil {
			return err
		}
		n, err := readyInferencePods(ctx, ns, "burst")
		if err != nil {
			return err
		}
		if r != 1 || n != 1 {
			return fmt.Errorf("replicas %d, %d Ready pods", r, n)
		}
		return nil
	})
	timings.record("scaling: all predicted to pool back at minimum (scale-down window 10s)", time.Since(drainedAt))
	out, _ := kubectl("get", "events", "-n", ns, "--field-selector", "reason=ScaledUp", "-o", "name")
	if strings.TrimSpace(out) == "" {
		t.Errorf("no ScaledUp event was recorded")
	}
}
