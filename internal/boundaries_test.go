// Package internal_test checks the boundaries between the operator and the data plane.
package internal_test

import (
	"os/exec"
	"strings"
	"testing"
)

// deps lists every package pkgs import, directly or not.
func deps(t *testing.T, pkgs ...string) []string {
	t.Helper()
	out, err := exec.Command("go", append([]string{"list", "-deps"}, pkgs...)...).Output()
	if err != nil {
		t.Fatalf("go list -deps %v: %v", pkgs, err)
	}
	return strings.Fields(string(out))
}

// TestDataPlaneImportsNoKubernetes: the pods' processes (ingestion, workers, model servers) and
// what they share import nothing of Kubernetes, so that they stay small, start fast and cannot
// come to depend on an API server.
func TestDataPlaneImportsNoKubernetes(t *testing.T) {
	t.Parallel()
	var found []string
	for _, d := range deps(t, "./ingest", "./worker", "./oip", "./model", "./queue", "./event", "./pipelineconfig", "./autoscale", "./scaler") {
		if strings.HasPrefix(d, "k8s.io/") || strings.HasPrefix(d, "sigs.k8s.io/") {
			found = append(found, d)
		}
	}
	if len(found) > 0 {
		t.Errorf("the data plane imports %d Kubernetes packages: %v", len(found), found)
	}
}

// TestSpecImportsNoControllerRuntime: the translation of the API into data-plane configuration
// serves local mode too, which runs no controller.
func TestSpecImportsNoControllerRuntime(t *testing.T) {
	t.Parallel()
	for _, d := range deps(t, "./spec") {
		if strings.HasPrefix(d, "sigs.k8s.io/controller-runtime") {
			t.Errorf("internal/spec imports %s", d)
		}
	}
}
