package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fetch-model places the pinned bytes of a download, trusted through --model-ca-file, where
// another runtime reads them; bytes that are not the pinned ones leave no file behind.
func TestFetchModelWritesOnlyThePinnedFile(t *testing.T) {
	data := []byte("model bytes another runtime reads")
	ts := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(data) }))
	defer ts.Close()
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.crt")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ts.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	out := filepath.Join(dir, "model.onnx")

	err := runFetchModel(context.Background(), []string{"--model-uri=" + ts.URL + "/m.onnx", "--model-sha256=" + strings.Repeat("0", 64),
		"--model-ca-file=" + ca, "--out=" + out})
	if err == nil || exitCode(err) != 78 {
		t.Errorf("a wrong digest: err = %v (exit %d), want the model refused as unloadable (exit 78)", err, exitCode(err))
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("a refused download left %s behind: %v", out, err)
	}

	if err := runFetchModel(context.Background(), []string{"--model-uri=" + ts.URL + "/m.onnx", "--model-sha256=" + hex.EncodeToString(sum[:]),
		"--model-ca-file=" + ca, "--out=" + out}); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(out)
	if err != nil || string(got) != string(data) {
		t.Errorf("%s = %q, %v; want the downloaded bytes", out, got, err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 {
		t.Errorf("the directory holds %d entries, want ca.crt and model.onnx only (no temporary file)", len(entries))
	}

	for _, args := range [][]string{{"--model-uri=" + ts.URL}, {"--out=" + out}, {"--out=" + out, "--model-uri=" + ts.URL, "extra"}} {
		if err := runFetchModel(context.Background(), args); err == nil {
			t.Errorf("fetch-model %v: no error", args)
		}
	}
}
