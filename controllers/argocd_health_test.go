package controllers

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/freightcast/freightcast/internal/testing/argohealth"
	"github.com/freightcast/freightcast/internal/testing/natstest"
	"github.com/freightcast/freightcast/internal/testing/testenv"
)

// The Argo CD health checks in config/argocd/health run here, in a real Lua interpreter, on the
// objects the operator itself produced against the API server: what Argo CD would read.

// argoHealth runs health.lua on obj and returns Argo CD's status and message.
func argoHealth(t testing.TB, obj client.Object) (string, string) {
	t.Helper()
	status, message, err := argohealth.Eval(filepath.Join("..", "config", "argocd", "health", "freightcast.io", "health.lua"), obj)
	if err != nil {
		t.Fatalf("%T: %v", obj, err)
	}
	return status, message
}

func TestArgoCDHealthOfRealObjects(t *testing.T) {
	srv := natstest.Start(t)
	ns := newNamespace(t)
	startOperator(t, srv.URL(), ns)
	ctx := context.Background()
	check := func(what string, obj client.Object, want string) {
		t.Helper()
		testenv.Eventually(t, 15*time.Second, what, func() error {
			if err := k8s.Get(ctx, client.ObjectKeyFromObject(obj), obj); err != nil {
				return err
			}
			got, msg := argoHealth(t, obj)
			if diff := cmp.Diff(want, got); diff != "" {
				return &healthMismatch{got: got, msg: msg}
			}
			return nil
		})
	}

	// A model whose ConfigMap is missing: Degraded. Then loading: Progressing. Then Healthy.
	model := newModel(ns, "m", "m-onnx")
	mustCreate(t, model)
	check("model without its ConfigMap", model, "Degraded")
	mustCreate(t, newModelConfigMap(ns, "m-onnx", modelBytes))
	check("model loading", model, "Progressing")
	// A pipeline whose model has not loaded yet waits: Progressing, not Degraded.
	p := newPipeline(ns, "orders", "m")
	mustCreate(t, p)
	check("pipeline waiting for its model", p, "Progressing")
	markDeploymentRolledOut(t, ns, "m-predictor")
	check("model serving", model, "Healthy")
	mustEventuallyGetDeployment(t, ns, "orders-ingest")
	markDeploymentRolledOut(t, ns, "orders-ingest")
	markDeploymentRolledOut(t, ns, "orders-inference")
	check("pipeline serving", p, "Healthy")

	// A spec the operator has not observed yet is never reported healthy.
	stale := p.DeepCopy()
	stale.Generation++
	if got, _ := argoHealth(t, stale); got != "Progressing" {
		t.Errorf("health of a spec not yet observed = %s, want Progressing", got)
	}

	// A model scaled to zero on purpose: Suspended.
	testenv.Eventually(t, 10*time.Second, "scale the model to zero", func() error {
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(model), model); err != nil {
			return err
		}
		model.Spec.Replicas = ptr.To[int32](0)
		return k8s.Update(ctx, model)
	})
	markDeploymentRolledOut(t, ns, "m-predictor")
	check("model scaled to zero", model, "Suspended")
}

type healthMismatch struct{ got, msg string }

func (h *healthMismatch) Error() string { return "health " + h.got + " (" + h.msg + ")" }
