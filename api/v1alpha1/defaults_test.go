package v1alpha1_test

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"
	"sigs.k8s.io/controller-runtime/pkg/client"

	freightcastv1alpha1 "github.com/freightcast/freightcast/api/v1alpha1"
)

// TestGoDefaultsMatchTheSchema keeps Default (used where no API server defaults, like local mode)
// in step with the CRD's +kubebuilder:default markers.
func TestGoDefaultsMatchTheSchema(t *testing.T) {
	ns := newNamespace(t)
	ctx := context.Background()
	p := newPipeline(ns, "p", "m")
	p.Spec.Ingestion.Auth = &freightcastv1alpha1.BearerTokenAuth{SecretRef: freightcastv1alpha1.SecretKeyReference{Name: "tokens"}}
	p.Spec.Inference.ScaleUp = &freightcastv1alpha1.ScalingRules{}
	p.Spec.Reporting = reporting()
	p.Spec.Reporting.Credentials = &freightcastv1alpha1.NATSCredentials{SecretRef: freightcastv1alpha1.SecretReference{Name: "reporting-nats"}}
	m := newModel(ns, "m", "m-onnx")
	m.Spec.Auth = &freightcastv1alpha1.BearerTokenAuth{SecretRef: freightcastv1alpha1.SecretKeyReference{Name: "oip-tokens"}}
	m.Spec.Runtime = &freightcastv1alpha1.RuntimeSpec{Image: "mlserver:1.6"}
	mustCreate(t, p, m)

	fromServer := &freightcastv1alpha1.FreightPipeline{}
	if err := k8s.Get(ctx, client.ObjectKeyFromObject(p), fromServer); err != nil {
		t.Fatal(err)
	}
	inGo := newPipeline(ns, "p", "m")
	inGo.Spec.Ingestion.Auth = &freightcastv1alpha1.BearerTokenAuth{SecretRef: freightcastv1alpha1.SecretKeyReference{Name: "tokens"}}
	inGo.Spec.Inference.ScaleUp = &freightcastv1alpha1.ScalingRules{}
	inGo.Spec.Reporting = reporting()
	inGo.Spec.Reporting.Credentials = &freightcastv1alpha1.NATSCredentials{SecretRef: freightcastv1alpha1.SecretReference{Name: "reporting-nats"}}
	inGo.Default()
	if diff := cmp.Diff(fromServer.Spec, inGo.Spec); diff != "" {
		t.Errorf("FreightPipeline defaults differ (-server +Go):\n%s", diff)
	}

	modelFromServer := &freightcastv1alpha1.PredictionModel{}
	if err := k8s.Get(ctx, client.ObjectKeyFromObject(m), modelFromServer); err != nil {
		t.Fatal(err)
	}
	modelInGo := newModel(ns, "m", "m-onnx")
	modelInGo.Spec.Auth = &freightcastv1alpha1.BearerTokenAuth{SecretRef: freightcastv1alpha1.SecretKeyReference{Name: "oip-tokens"}}
	modelInGo.Spec.Runtime = &freightcastv1alpha1.RuntimeSpec{Image: "mlserver:1.6"}
	modelInGo.Default()
	if diff := cmp.Diff(modelFromServer.Spec, modelInGo.Spec); diff != "" {
		t.Errorf("PredictionModel defaults differ (-server +Go):\n%s", diff)
	}
}
