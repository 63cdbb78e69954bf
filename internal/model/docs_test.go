package model

import (
	"bytes"
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

// updateDocsEnv, set to 1, makes the tests that check a generated section of the docs write it
// instead (make conformance-table sets it).
const updateDocsEnv = "FREIGHTCAST_UPDATE_DOCS"

// checkGeneratedSection compares the section of the Markdown file at path between
// "<!-- name:begin ... -->" and "<!-- name:end -->" with want, or writes want there when
// updateDocsEnv is 1.
func checkGeneratedSection(t *testing.T, path, name, want string) {
	t.Helper()
	doc, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	begin, end := "<!-- "+name+":begin", "<!-- "+name+":end -->"
	i, j := bytes.Index(doc, []byte(begin)), bytes.Index(doc, []byte(end))
	if i < 0 || j < i {
		t.Fatalf("%s has no section %s … %s", path, begin, end)
	}
	i += bytes.IndexByte(doc[i:], '\n') + 1
	if string(doc[i:j]) == want {
		return
	}
	if os.Getenv(updateDocsEnv) != "1" {
		t.Errorf("%s: the %s section is stale; run `make conformance-table` (-file +now):\n%s", path, name, cmp.Diff(string(doc[i:j]), want))
		return
	}
	out := append(append(slices.Clone(doc[:i]), want...), doc[j:]...)
	if err := os.WriteFile(path, out, 0o644); err != nil {
		t.Fatal(err)
	}
}
