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
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	freightcastv1alpha1 "github.com/freightcast/freightcast/api/v1alpha1"
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
