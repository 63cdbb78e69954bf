package model

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The model fixtures of testdata/models: real models trained by scikit-learn, XGBoost and
// PyTorch (hack/modelfixtures), each with its framework's own answers on held-out rows.

const fixtureDir = "testdata/models"

type fixtureManifest struct {
	Fixtures []struct {
		Name      string `json:"name"`
		File      string `json:"file"`
		Expected  string `json:"expected"`
		Benchmark bool   `json:"benchmark"`
	} `json:"fixtures"`
}

// fixtureTensor is one input or expected output: OIP-style name, datatype, shape and flat data
// (null stands for NaN). A ZipMap output lists the class labels its probabilities are for.
type fixtureTensor struct {
	Name         string            `json:"name"`
	Datatype     string            `json:"datatype"`
	Shape        []int             `json:"shape"`
	Data         []json.RawMessage `json:"data"`
	ZipmapLabels []json.RawMessage `json:"zipmap_labels"`
}

type fixture struct {
	Name    string
	Model   []byte          `json:"-"`
	Inputs  []fixtureTensor `json:"inputs"`
	Outputs []fixtureTensor `json:"outputs"`
}

func readManifest(t testing.TB) fixtureManifest {
	t.Helper()
	var m fixtureManifest
	b, err := os.ReadFile(filepath.Join(fixtureDir, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if len(m.Fixtures) == 0 {
		t.Fatal("the manifest lists no fixtures")
	}
	return m
}

// loadFixture reads a fixture's model (gunzipped if need be) and expected answers.
func loadFixture(t testing.TB, name string) *fixture {
	t.Helper()
	for _, f := range readManifest(t).Fixtures {
		if f.Name != name {
			continue
		}
		fx := &fixture{Name: name}
		b, err := os.ReadFile(filepath.Join(fixtureDir, f.Expected))
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, fx); err != nil {
			t.Fatalf("%s: %v", f.Expected, err)
		}
		fx.Model, err = os.ReadFile(filepath.Join(fixtureDir, f.File))
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasSuffix(f.File, ".gz") {
			zr, err := gzip.NewReader(bytes.NewReader(fx.Model))
			if err != nil {
				t.Fatal(err)
			}
			if fx.Model, err = io.ReadAll(zr); err != nil {
				t.Fatal(err)
			}
		}
		return fx
	}
	t.Fatalf("no fixture %s in the manifest", name)
	return nil
}

func (ft fixtureTensor) float32s(t testing.TB) []float32 {
	t.Helper()
	out := make([]float32, len(ft.Data))
	for i, raw := range ft.Data {
		if string(raw) == "null" {
			out[i] = float32(math.NaN())
			continue
		}
		var v float64
		if err := json.Unmarshal(raw, &v); err != nil {
			t.Fatalf("%s[%d]: %v", ft.Name, i, err)
		}
		out[i] = float32(v)
	}
	return out
}

func (ft fixtureTensor) int64s(t testing.TB) []int64 {
	t.Helper()
	out := make([]int64, len(ft.Data))
	for i, raw := range ft.Data {
		if err := json.Unmarshal(raw, &out[i]); err != nil {
			t.Fatalf("%s[%d]: %v", ft.Name, i, err)
		}
	}
	return out
}

func (ft fixtureTensor) strings(t testing.TB) []string {
	t.Helper()
	out := make([]string, len(ft.Data))
	for i, raw := range ft.Data {
		if err := json.Unmarshal(raw, &out[i]); err != nil {
			t.Fatalf("%s[%d]: %v", ft.Name, i, err)
		}
	}
	return out
}

// closeFloats reports the first value that differs by more than tol absolutely and relatively.
func closeFloats(t testing.TB, what string, got, want []float32, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	for i := range want {
		g, w := float64(got[i]), float64(want[i])
		if d := math.Abs(g - w); d > tol && d > tol*math.Abs(w) || math.IsNaN(g) != math.IsNaN(w) {
			t.Fatalf("%s[%d] = %v, want %v", what, i, g, w)
		}
	}
}
