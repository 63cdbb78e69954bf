// Package testenv finds the kube-apiserver and etcd binaries that envtest runs, for the test
// suites that need a real API server.
package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
)

// Assets returns the directory holding kube-apiserver and etcd: KUBEBUILDER_ASSETS when set (make
// test sets it), otherwise the project's own build of them, which hack/k8s-binaries.sh makes once
// and caches outside the clone.
func Assets() (string, error) {
	if dir := os.Getenv("KUBEBUILDER_ASSETS"); dir != "" {
		return dir, nil
	}
	_, self, _, ok := runtime.Caller(0)
	if !ok {
		return "", fmt.Errorf("testenv: cannot locate the repository")
	}
	script := filepath.Join(filepath.Dir(self), "..", "..", "hack", "k8s-binaries.sh")
	out, err := exec.Command(script).Output()
	if err != nil {
		return "", fmt.Errorf("building envtest binaries with %s: %w", script, err)
	}
	return strings.TrimSpace(string(out)), nil
}

// CRDDirectory is config/crd/bases, the generated CRDs.
func CRDDirectory() string {
	_, self, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(self), "..", "..", "config", "crd", "bases")
}
