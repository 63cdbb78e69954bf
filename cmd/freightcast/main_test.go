package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestTerminationMessage: the fatal error goes where the kubelet reads it, when the kubelet made
// the file (it always does in a pod), cut to what the kubelet keeps; outside a pod nothing is
// created.
func TestTerminationMessage(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "termination-log")
	if err := os.WriteFile(log, []byte("an older message that is longer than the new one"), 0o600); err != nil {
		t.Fatal(err)
	}
	writeTerminationMessage(log, "freightcast infer: load model: unsupported")
	if got, _ := os.ReadFile(log); string(got) != "freightcast infer: load model: unsupported" {
		t.Errorf("termination log holds %q", got)
	}
	writeTerminationMessage(log, strings.Repeat("x", 10000))
	if got, _ := os.ReadFile(log); len(got) != maxTerminationMessage || !strings.HasSuffix(string(got), "...") {
		t.Errorf("a long message left %d bytes", len(got))
	}
	missing := filepath.Join(dir, "not-in-a-pod")
	writeTerminationMessage(missing, "whatever")
	if _, err := os.Stat(missing); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("outside a pod the termination log was created: %v", err)
	}
}
