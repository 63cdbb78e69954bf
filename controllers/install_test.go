package controllers

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// TestInstallManifestApplies applies dist/install.yaml (`make build-installer`, which `make test`
// runs first: kustomize's rendering of config/default) to the real API server: the namespace for
// real, every other object as a server-side dry run, so that the API server validates each one.
func TestInstallManifestApplies(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "dist", "install.yaml"))
	if err != nil {
		t.Fatalf("%v: run make build-installer first (make test does)", err)
	}
	ctx := context.Background()
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	kinds := map[string]int{}
	for {
		obj := &unstructured.Unstructured{}
		if err := dec.Decode(&obj.Object); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			t.Fatal(err)
		}
		if len(obj.Object) == 0 {
			continue
		}
		opts := []client.ApplyOption{client.FieldOwner("install-test"), client.ForceOwnership}
		if obj.GetKind() != "Namespace" {
			opts = append(opts, client.DryRunAll)
		}
		if err := k8s.Apply(ctx, client.ApplyConfigurationFromUnstructured(obj), opts...); err != nil {
			t.Errorf("applying %s %s: %v", obj.GetKind(), obj.GetName(), err)
		}
		kinds[obj.GetKind()]++
	}
	for _, kind := range []string{"Namespace", "CustomResourceDefinition", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "Deployment", "Service", "ConfigMap", "StatefulSet", "ValidatingWebhookConfiguration"} {
		if kinds[kind] == 0 {
			t.Errorf("install.yaml has no %s (kinds: %v)", kind, kinds)
		}
	}
}
