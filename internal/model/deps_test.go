package model

import (
	osexec "os/exec"
	"strings"
	"testing"
)

// referenceOnlyModules are the modules the tests cross-check against (onnx-go's gorgonia
// backend) and that must never decide whether a model loads: internal/onnxpb is the decoder
// (docs/model.md says why).
var referenceOnlyModules = []string{"github.com/owulveryck/", "gorgonia.org/"}

// TestLoadPathWithoutOnnxGo fails when the runtime, or the binary that serves models, comes to
// depend on onnx-go or gorgonia outside the tests.
func TestLoadPathWithoutOnnxGo(t *testing.T) {
	out, err := osexec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}",
		"github.com/freightcast/freightcast/internal/model", "github.com/freightcast/freightcast/cmd/...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	deps := strings.Fields(string(out))
	if len(deps) < 10 || !strings.Contains(string(out), "github.com/freightcast/freightcast/internal/onnxpb") {
		t.Fatalf("go list -deps listed %d packages, without internal/onnxpb: not the load path\n%s", len(deps), out)
	}
	for _, dep := range deps {
		for _, prefix := range referenceOnlyModules {
			if strings.HasPrefix(dep, prefix) {
				t.Errorf("%s is on the model-load path; it belongs in the tests only", dep)
			}
		}
	}
}
