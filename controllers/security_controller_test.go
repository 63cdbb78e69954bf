package controllers

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	freightcastv1alpha1 "github.com/freightcast/freightcast/api/v1alpha1"
	"github.com/freightcast/freightcast/internal/testing/natstest"
	"github.com/freightcast/freightcast/internal/testing/testenv"
)

// TestModelWithAuthAndTLSNeedsNoSecretRead: the operator builds the serving pods of a model with
// spec.auth and spec.tls from names alone; the Secrets need not even exist yet (the kubelet
// mounts them, and the pods wait for them).
func TestModelWithAuthAndTLSNeedsNoSecretRead(t *testing.T) {
	ns := newNamespace(t)
	startOperator(t, "", ns)
	model := newModel(ns, "risk", "risk-onnx")
	model.Spec.Auth = &freightcastv1alpha1.BearerTokenAuth{SecretRef: freightcastv1alpha1.SecretKeyReference{Name: "oip-tokens"}}
	model.Spec.TLS = &freightcastv1alpha1.TLSSpec{SecretRef: freightcastv1alpha1.SecretReference{Name: "risk-cert"}}
	mustCreate(t, newModelConfigMap(ns, "risk-onnx", modelBytes), model)

	d := mustEventuallyGetDeployment(t, ns, "risk-predictor")
	c := d.Spec.Template.Spec.Containers[0]
	for _, want := range []string{"--tokens-file=/etc/freightcast/auth/tokens", "--tls-cert-file=/etc/freightcast/tls/tls.crt", "--tls-key-file=/etc/freightcast/tls/tls.key"} {
		if !slices.Contains(c.Args, want) {
			t.Errorf("args %v lack %s", c.Args, want)
		}
	}
	if c.ReadinessProbe.HTTPGet.Scheme != corev1.URISchemeHTTPS || c.ReadinessProbe.HTTPGet.Path != "/v2/health/ready" {
		t.Errorf("readiness probe %+v", c.ReadinessProbe.HTTPGet)
	}
	testenv.Eventually(t, 10*time.Second, "https endpoint in status", func() error {
		if err := k8s.Get(t.Context(), client.ObjectKeyFromObject(model), model); err != nil {
			return err
		}
		if want := "https://risk-predictor." + ns + ".svc:8080/v2/models/risk"; model.Status.Endpoint != want {
			return fmt.Errorf("status.endpoint %q, want %q", model.Status.Endpoint, want)
		}
		return nil
	})
}

// TestInferencePoolServesNoAPIToGuard: the pool of a pipeline whose model takes tokens gets no
// tokens: its pods run `infer --worker`, which serves only the probes and /metrics (the data
// plane's test, cmd/freightcast TestInferWorkerModeConsumesThePipeline, proves the 404s), so
// there is no API for a token to guard and no Secret of the model's to spread to more pods.
func TestInferencePoolServesNoAPIToGuard(t *testing.T) {
	srv := natstest.Start(t)
	ns := newNamespace(t)
	startOperator(t, srv.URL(), ns)
	model := newModel(ns, "risk", "risk-onnx")
	model.Spec.Auth = &freightcastv1alpha1.BearerTokenAuth{SecretRef: freightcastv1alpha1.SecretKeyReference{Name: "oip-tokens"}}
	mustCreate(t, newModelConfigMap(ns, "risk-onnx", modelBytes), model)
	mustEventuallyGetDeployment(t, ns, "risk-predictor")
	markDeploymentRolledOut(t, ns, "risk-predictor")
	waitCondition(t, model, freightcastv1alpha1.ConditionModelLoaded, metav1.ConditionTrue, freightcastv1alpha1.ReasonModelLoaded)
	mustCreate(t, newPipeline(ns, "orders", "risk"))

	pod := mustEventuallyGetDeployment(t, ns, "orders-inference").Spec.Template.Spec
	c := pod.Containers[0]
	if !slices.Contains(c.Args, "--worker") {
		t.Errorf("pool args %v lack --worker, the mode that serves only the probes", c.Args)
	}
	for _, arg := range c.Args {
		if strings.HasPrefix(arg, "--tokens-file") {
			t.Errorf("pool args carry %s: the pool serves no API to guard", arg)
		}
	}
	for _, v := range pod.Volumes {
		if v.Secret != nil && v.Secret.SecretName == "oip-tokens" {
			t.Errorf("the pool mounts the model's tokens Secret as volume %q", v.Name)
		}
	}
	for probe, want := range map[string]*corev1.Probe{"/v2/health/live": c.LivenessProbe, "/v2/health/ready": c.ReadinessProbe} {
		if want == nil || want.HTTPGet == nil || want.HTTPGet.Path != probe {
			t.Errorf("pool probe %s: %+v", probe, want)
		}
	}
}

// TestOperatorRoleReadsNoSecrets keeps the generated ClusterRole free of any access to Secrets:
// tokens and certificates reach the pods as volumes, never through the operator.
func TestOperatorRoleReadsNoSecrets(t *testing.T) {
	raw, err := os.ReadFile("../config/rbac/role.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var role rbacv1.ClusterRole
	if err := yaml.Unmarshal(raw, &role); err != nil {
		t.Fatal(err)
	}
	for _, rule := range role.Rules {
		for _, r := range rule.Resources {
			if r == "secrets" || r == "*" || strings.HasPrefix(r, "secrets/") {
				t.Errorf("the operator's role grants %v on %s", rule.Verbs, r)
			}
		}
	}
}
