package controllers

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/freightcast/freightcast/internal/testing/helmtest"
)

// TestHelmChartApplies applies what `helm template` renders from charts/freightcast, with its
// defaults and with every option on, to the real API server as a server-side dry run, so that
// the API server validates each object (as TestInstallManifestApplies does for the kustomize
// install). The Prometheus operator's kinds are left out: envtest has no CRDs for them (the
// chart tests in charts/ check them).
func TestHelmChartApplies(t *testing.T) {
	const ns = "freightcast-helm"
	ctx := context.Background()
	if err := k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	cases := map[string][]string{
		"defaults":      nil,
		"external nats": {"--set", "nats.enabled=false", "--set", "nats.url=nats://nats.messaging.svc:4222", "--set", "networkPolicy.enabled=true"},
		"everything on": {"--set", "nats.replicas=3", "--set", "networkPolicy.enabled=true", "--set", "monitoring.serviceMonitor.enabled=true",
			"--set", "monitoring.podMonitor.enabled=true", "--set", "monitoring.prometheusRule.enabled=true", "--set", "monitoring.dashboard.enabled=true"},
	}
	for name, args := range cases {
		t.Run(name, func(t *testing.T) {
			objs := helmtest.Render(t, "freightcast", ns, args...)
			applied := map[string]int{}
			for _, obj := range objs {
				if obj.GetAPIVersion() == "monitoring.coreos.com/v1" {
					continue
				}
				opts := []client.ApplyOption{client.FieldOwner("helm-chart-test"), client.ForceOwnership, client.DryRunAll}
				if err := k8s.Apply(ctx, client.ApplyConfigurationFromUnstructured(obj), opts...); err != nil {
					t.Errorf("applying %s %s: %v", obj.GetKind(), obj.GetName(), err)
				}
				applied[obj.GetKind()]++
			}
			for _, kind := range []string{"CustomResourceDefinition", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "Deployment", "ValidatingWebhookConfiguration"} {
				if applied[kind] == 0 {
					t.Errorf("the chart rendered no %s (kinds: %v)", kind, applied)
				}
			}
		})
	}
}
