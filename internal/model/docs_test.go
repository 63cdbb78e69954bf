package model

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestDocsListOperators keeps docs/inference.md's list of ai.onnx operators equal to what the
// runtime registers.
func TestDocsListOperators(t *testing.T) {
	doc, err := os.ReadFile("../../docs/inference.md")
	if err != nil {
		t.Fatal(err)
	}
	text := string(doc)
	start := strings.Index(text, "`ai.onnx` operators, opsets")
	if start < 0 {
		t.Fatal("docs/inference.md has no list of ai.onnx operators")
	}
	para := text[start:]
	para = para[strings.Index(para, "\n\n")+2:]
	para = para[:strings.Index(para, "\n\n")]
	para = regexp.MustCompile(`\([^)]*\)`).ReplaceAllString(para, "")
	var listed []string
	for _, name := range strings.Split(strings.TrimSuffix(strings.TrimSpace(para), "."), ",") {
		listed = append(listed, strings.TrimSpace(name))
	}
	slices.Sort(listed)
	if diff := cmp.Diff(supportedOps(domainONNX), listed); diff != "" {
		t.Errorf("docs/inference.md lists other operators than the runtime supports (-runtime +docs):\n%s", diff)
	}
}
