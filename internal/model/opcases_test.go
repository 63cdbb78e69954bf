package model

import (
	"path/filepath"
	"testing"
)

// TestOpCases runs the cases hack/opcases writes for what ONNX 1.12's backend suite predates
// (opset 18–20 forms of Reduce*, Split, Pad; Gelu; variadic broadcasting; LayerNormalization's
// statistics; MatMul's batch broadcasting), with numpy's answers, through the suite's harness.
func TestOpCases(t *testing.T) {
	dirs, err := filepath.Glob("testdata/opcases/*")
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no cases in testdata/opcases (%v): run hack/opcases/opcases.py", err)
	}
	for _, dir := range dirs {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			if res := runBackendCase(dir); res.status != "passed" {
				t.Errorf("%s: %s", res.status, res.detail)
			}
		})
	}
}
