// Package helmtest renders the Helm chart (charts/freightcast) with the helm binary, for the
// tests that check what it installs.
package helmtest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
)

// helmVersion is the Makefile's HELM_VERSION: the build `make helm-lint` caches.
const helmVersion = "v4.3.1"

// Root is the repository's root directory.
func Root() string {
	_, self, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(self), "..", "..", "..")
}

// ChartDir is charts/freightcast.
func ChartDir() string { return filepath.Join(Root(), "charts", "freightcast") }

// Binary is the helm binary: $HELM (make test sets it, and then it must exist), otherwise the
// Makefile's cached build when it is there. Without either the test is skipped: run it through
// `make test`, or `make helm-lint` once and then go test.
func Binary(t testing.TB) string {
	t.Helper()
	if h := os.Getenv("HELM"); h != "" {
		if _, err := os.Stat(h); err != nil {
			t.Fatalf("HELM=%s: %v", h, err)
		}
		return h
	}
	cache := os.Getenv("XDG_CACHE_HOME")
	if cache == "" {
		home, _ := os.UserHomeDir()
		cache = filepath.Join(home, ".cache")
	}
	h := filepath.Join(cache, "freightcast", "tools", "bin", "helm-"+helmVersion)
	if _, err := os.Stat(h); err != nil {
		t.Skipf("no helm: set HELM to a helm binary, or run `make helm-lint` (which builds %s) first", h)
	}
	return h
}

// Template runs `helm template RELEASE charts/freightcast --namespace NAMESPACE ARGS...` and
// returns its output, or helm's error output.
func Template(t testing.TB, release, namespace string, args ...string) ([]byte, error) {
	t.Helper()
	cmd := exec.Command(Binary(t), append([]string{"template", release, ChartDir(), "--namespace", namespace}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("helm template %v: %w: %s", args, err, stderr.String())
	}
	return out, nil
}

// Render is Template, decoded into objects; a rendering error fails the test.
func Render(t testing.TB, release, namespace string, args ...string) []*unstructured.Unstructured {
	t.Helper()
	out, err := Template(t, release, namespace, args...)
	if err != nil {
		t.Fatal(err)
	}
	objs, err := Decode(out)
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

// Decode splits a multi-document YAML stream into objects, skipping empty documents.
func Decode(data []byte) ([]*unstructured.Unstructured, error) {
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	var objs []*unstructured.Unstructured
	for {
		obj := &unstructured.Unstructured{}
		if err := dec.Decode(&obj.Object); err != nil {
			if errors.Is(err, io.EOF) {
				return objs, nil
			}
			return nil, err
		}
		if len(obj.Object) > 0 {
			objs = append(objs, obj)
		}
	}
}

// Find returns the object of that kind and name, or nil.
func Find(objs []*unstructured.Unstructured, kind, name string) *unstructured.Unstructured {
	for _, o := range objs {
		if o.GetKind() == kind && o.GetName() == name {
			return o
		}
	}
	return nil
}
