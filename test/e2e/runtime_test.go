//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// standInRuntimeYAML is a PredictionModel served by spec.runtime, whose image is the project's
// own image running `freightcast infer`: the stand-in for another OIP v2 runtime (Triton,
// MLServer). The operator knows it only as an image speaking the protocol on a port; the model
// file reaches it through $(FREIGHTCAST_MODEL_PATH), the tokens through
// $(FREIGHTCAST_TOKENS_FILE).
func standInRuntimeYAML(image string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Secret
metadata:
  name: standin-tokens
stringData:
  tokens: |
    pool-token-of-the-e2e
---
apiVersion: freightcast.io/v1alpha1
kind: PredictionModel
metadata:
  name: standin
spec:
  source:
    configMap:
      name: freight-delay-risk-onnx
  features: [distance_km, mode_ocean, mode_air, mode_rail, mode_road, carrier_on_time_rate, port_congestion_index,
    weather_severity, month_sin, month_cos, customs_complexity, dwell_time_hours]
  replicas: 2
  auth:
    secretRef: {name: standin-tokens}
  resources:
    requests: {cpu: 100m, memory: 64Mi}
    limits: {memory: 256Mi}
  runtime:
    image: %s
    protocol: REST
    port: 9000
    args: [infer, --addr=:9000, --model-file=$(FREIGHTCAST_MODEL_PATH), --model-name=$(FREIGHTCAST_MODEL_NAME),
      --model-version=$(FREIGHTCAST_MODEL_VERSION), --tokens-file=$(FREIGHTCAST_TOKENS_FILE)]
`, image)
}

// TestRemoteScoringSurvivesTheRuntimeBeingKilled: a pipeline scores through a model that another
// runtime serves (the stand-in), and every pod of that runtime is killed while events flow. The
// events wait in the queue until new runtime pods answer; every event is predicted exactly once
// and none is dead-lettered.
func TestRemoteScoringSurvivesTheRuntimeBeingKilled(t *testing.T) {
	ns := newNamespace(t, "byo")
	applyFile(t, ns, repoRoot+"/config/samples/freightcast_v1alpha1_model_configmap.yaml")
	applyYAML(t, ns, standInRuntimeYAML(operatorImage))
	took := waitModelReady(t, ns, "standin", 3*time.Minute)
	timings.record("runtime: a spec.runtime model (stand-in image) applied to Ready", took)
	applyYAML(t, ns, strings.Replace(pipelineYAML("byo", 1, 4, "30s"), "freight-delay-risk", "standin", 1))
	ingest, q := pipelineEndpoints(t, ns, "byo")
	ctx := context.Background()

	events := makeEvents("byo", 8000)
	start := time.Now()
	done := make(chan error, 1)
	go func() { done <- sendConcurrently(ingest, events, 2, 200) }()
	eventually(t, 2*time.Minute, "the first predictions through the runtime", func() error {
		p, _, _, err := q.counts(ctx)
		if err != nil {
			return err
		}
		if p < 500 {
			return fmt.Errorf("%d predictions", p)
		}
		return nil
	})
	pods := &corev1.PodList{}
	selector := client.MatchingLabels{"freightcast.io/model": "standin", "app.kubernetes.io/component": "predictor"}
	if err := k8s.List(ctx, pods, client.InNamespace(ns), selector); err != nil {
		t.Fatal(err)
	}
	if len(pods.Items) == 0 {
		t.Fatal("no runtime pod to kill")
	}
	// Killed, not drained: no grace period.
	if err := k8s.DeleteAllOf(ctx, &corev1.Pod{}, client.InNamespace(ns), selector, client.GracePeriodSeconds(0)); err != nil {
		t.Fatal(err)
	}
	killedAt := time.Now()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	waitAllPredicted(t, q, events, 0, 5*time.Minute)
	timings.record(fmt.Sprintf("runtime: %d events scored remotely, runtime pods killed mid-stream, to all predicted exactly once", len(events)), time.Since(start))
	timings.record("runtime: runtime pods killed to all predicted", time.Since(killedAt))
	waitPipelineReady(t, ns, "byo", 2*time.Minute)
}
