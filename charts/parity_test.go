package charts

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/freightcast/freightcast/internal/testing/helmtest"
)

// parityFields are, per kind, the fields that make the install what it is. Labels and
// annotations differ on purpose (Helm's release labels; the CRDs' keep policy), except the ones
// selectors use, which these fields include.
var parityFields = map[string][][]string{
	"CustomResourceDefinition": {{"spec"}},
	"ClusterRole":              {{"rules"}, {"aggregationRule"}},
	"ClusterRoleBinding":       {{"roleRef"}, {"subjects"}},
	"Role":                     {{"rules"}},
	"RoleBinding":              {{"roleRef"}, {"subjects"}},
	"ServiceAccount":           {{"automountServiceAccountToken"}},
	"Deployment":               {{"spec", "replicas"}, {"spec", "selector"}, {"spec", "template", "spec"}},
	"StatefulSet": {{"spec", "replicas"}, {"spec", "selector"}, {"spec", "serviceName"}, {"spec", "podManagementPolicy"},
		{"spec", "template", "spec"}, {"spec", "template", "metadata", "annotations"}, {"spec", "volumeClaimTemplates"}},
	"Service":   {{"spec"}},
	"ConfigMap": {{"data"}},
	// caBundle is left out of both: the operator writes it.
	"ValidatingWebhookConfiguration": {{"webhooks"}},
}

// TestKustomizeInstallMatchesChartDefaults compares dist/install.yaml (make build-installer:
// kustomize's rendering of config/default, which make test runs first) with the chart's defaults
// for a release named freightcast in freightcast-system: the same objects, and the same
// fields that matter, the image included (both default to the chart's appVersion as the tag).
func TestKustomizeInstallMatchesChartDefaults(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(helmtest.Root(), "dist", "install.yaml"))
	if err != nil {
		t.Fatalf("%v: run make build-installer first (make test does)", err)
	}
	kustomized, err := helmtest.Decode(data)
	if err != nil {
		t.Fatal(err)
	}
	chart := render(t)

	index := func(objs []*unstructured.Unstructured) map[string]*unstructured.Unstructured {
		m := map[string]*unstructured.Unstructured{}
		for _, o := range objs {
			if o.GetKind() == "Namespace" {
				continue // kustomize creates it; Helm installs into it (--create-namespace)
			}
			m[fmt.Sprintf("%s %s/%s", o.GetKind(), o.GetNamespace(), o.GetName())] = o
		}
		return m
	}
	k, h := index(kustomized), index(chart)
	keys := func(m map[string]*unstructured.Unstructured) []string {
		var out []string
		for key := range m {
			out = append(out, key)
		}
		slices.Sort(out)
		return out
	}
	if diff := cmp.Diff(keys(k), keys(h)); diff != "" {
		t.Errorf("objects differ (-kustomize +chart):\n%s", diff)
	}
	for key, ko := range k {
		ho, ok := h[key]
		if !ok {
			continue
		}
		fields, ok := parityFields[ko.GetKind()]
		if !ok {
			t.Errorf("%s: no parity fields for kind %s", key, ko.GetKind())
			continue
		}
		for _, f := range fields {
			kv, _, _ := unstructured.NestedFieldNoCopy(ko.Object, f...)
			hv, _, _ := unstructured.NestedFieldNoCopy(ho.Object, f...)
			if diff := cmp.Diff(kv, hv); diff != "" {
				t.Errorf("%s %v differs (-kustomize +chart):\n%s", key, f, diff)
			}
		}
	}
	if len(k) < 15 {
		t.Errorf("only %d objects compared", len(k))
	}
}
