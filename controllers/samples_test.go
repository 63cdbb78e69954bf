package controllers

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"

	freightcastv1alpha1 "github.com/freightcast/freightcast/api/v1alpha1"
	"github.com/freightcast/freightcast/internal/pipelineconfig"
	"github.com/freightcast/freightcast/internal/testing/natstest"
	"github.com/freightcast/freightcast/internal/testing/testenv"
)

// applySamples does what `kubectl apply -n NS -f config/samples/` does, with server-side apply.
func applySamples(t *testing.T, ns string) {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("..", "config", "samples", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no samples found: %v", err)
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
		for {
			obj := &unstructured.Unstructured{}
			if err := dec.Decode(&obj.Object); err != nil {
				if err.Error() == "EOF" {
					break
				}
				t.Fatalf("%s: %v", f, err)
			}
			if len(obj.Object) == 0 {
				continue
			}
			obj.SetNamespace(ns)
			if err := k8s.Apply(context.Background(), client.ApplyConfigurationFromUnstructured(obj), client.FieldOwner("kubectl"), client.ForceOwnership); err != nil {
				t.Fatalf("applying %s %s from %s: %v", obj.GetKind(), obj.GetName(), f, err)
			}
		}
	}
}

func TestSamplesBecomeARunningPipeline(t *testing.T) {
	srv := natstest.Start(t)
	ns := newNamespace(t)
	startOperator(t, srv.URL(), ns)
	applySamples(t, ns)

	model := &freightcastv1alpha1.PredictionModel{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "freight-delay-risk"}}
	predictor := mustEventuallyGetDeployment(t, ns, "freight-delay-risk-predictor")
	if *predictor.Spec.Replicas != 2 {
		t.Errorf("serving replicas = %d, want the sample's 2", *predictor.Spec.Replicas)
	}
	c := predictor.Spec.Template.Spec.Containers[0]
	if !slices.Contains(c.Args, "--features=distance_km,mode_ocean,mode_air,mode_rail,mode_road,carrier_on_time_rate,port_congestion_index,weather_severity,month_sin,month_cos,customs_complexity,dwell_time_hours") {
		t.Errorf("serving args %v lack the sample's feature order", c.Args)
	}
	if c.Resources.Limits.Memory().String() != "256Mi" {
		t.Errorf("serving resources %+v", c.Resources)
	}
	markDeploymentRolledOut(t, ns, "freight-delay-risk-predictor")
	waitCondition(t, model, freightcastv1alpha1.ConditionReady, metav1.ConditionTrue, freightcastv1alpha1.ReasonAvailable)

	pipeline := &freightcastv1alpha1.FreightPipeline{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "eu-lanes"}}
	waitCondition(t, pipeline, freightcastv1alpha1.ConditionQueueReady, metav1.ConditionTrue, freightcastv1alpha1.ReasonQueueProvisioned)
	mustEventuallyGetDeployment(t, ns, "eu-lanes-ingest")
	mustEventuallyGetDeployment(t, ns, "eu-lanes-inference")
	cm := &corev1.ConfigMap{}
	testenv.Eventually(t, 10*time.Second, "pipeline config", func() error {
		return k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "eu-lanes-pipeline"}, cm)
	})
	cfg, err := pipelineconfig.Parse([]byte(cm.Data[pipelineconfig.FileName]))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Ingestion.RateLimit == nil || cfg.Ingestion.RateLimit.Burst != 40000 || len(cfg.Model.Features) != 12 {
		t.Errorf("pipeline config from the sample = %+v", cfg)
	}
	markDeploymentRolledOut(t, ns, "eu-lanes-ingest")
	markDeploymentRolledOut(t, ns, "eu-lanes-inference")
	waitCondition(t, pipeline, freightcastv1alpha1.ConditionReady, metav1.ConditionTrue, freightcastv1alpha1.ReasonPipelineReady)
}
