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

// The manifest of testdata/models (hack/modelfixtures): every fixture, its file (gzipped when
// large) and whether the benchmarks use it.
type fixtureManifest struct {
	Fixtures []struct {
		Name      string `json:"name"`
		File      string `json:"file"`
		Benchmark bool   `json:"benchmark"`
	} `json:"fixtures"`
}

func readManifest(t testing.TB) fixtureManifest {
	t.Helper()
	var m fixtureManifest
	b, err := os.ReadFile(filepath.Join(modelFixtures, "manifest.json"))
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

// fixture is a model fixture: the file's bytes (gunzipped), and the inputs and framework
// answers of NAME.json as tensors.
type fixture struct {
	name    string
	model   []byte
	json    oipFixture
	inputs  []*Tensor
	outputs []*Tensor
}

func loadFixture(t testing.TB, name string) *fixture {
	t.Helper()
	for _, f := range readManifest(t).Fixtures {
		if f.Name != name {
			continue
		}
		fx := &fixture{name: name}
		var err error
		if fx.model, err = os.ReadFile(filepath.Join(modelFixtures, f.File)); err != nil {
			t.Fatal(err)
		}
		if strings.HasSuffix(f.File, ".gz") {
			zr, err := gzip.NewReader(bytes.NewReader(fx.model))
			if err != nil {
				t.Fatal(err)
			}
			if fx.model, err = io.ReadAll(zr); err != nil {
				t.Fatal(err)
			}
		}
		fx.readJSON(t, filepath.Join(modelFixtures, name+".json"))
		return fx
	}
	t.Fatalf("no fixture %s in the manifest", name)
	return nil
}

// loadCase reads a one-operator case of testdata/mlops: NAME.onnx and NAME.json.
func loadCase(t testing.TB, dir, name string) *fixture {
	t.Helper()
	fx := &fixture{name: name}
	var err error
	if fx.model, err = os.ReadFile(filepath.Join(dir, name+".onnx")); err != nil {
		t.Fatal(err)
	}
	fx.readJSON(t, filepath.Join(dir, name+".json"))
	return fx
}

func (fx *fixture) readJSON(t testing.TB, path string) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &fx.json); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	for _, v := range fx.json.Inputs {
		fx.inputs = append(fx.inputs, fixtureTensor(t, v))
	}
	for _, v := range fx.json.Outputs {
		fx.outputs = append(fx.outputs, fixtureTensor(t, v))
	}
}

// evalFixture loads a fixture's model and runs it on the fixture's inputs.
func evalFixture(t testing.TB, fx *fixture) (*Model, []*Tensor) {
	t.Helper()
	m, err := Load(fx.model)
	if err != nil {
		t.Fatal(err)
	}
	outs := make([]*Tensor, len(m.Metadata().Outputs))
	for i := range outs {
		outs[i] = &Tensor{}
	}
	if err := m.Eval(fx.inputs, outs); err != nil {
		t.Fatal(err)
	}
	return m, outs
}

// sameAnswers compares an output with the framework's: labels and other integers or strings
// exactly, floats within tol absolutely or relatively.
func sameAnswers(t testing.TB, what string, got, want *Tensor, tol float64) {
	t.Helper()
	if got.DType != want.DType && !(got.DType.isFloat() && want.DType.isFloat()) {
		t.Fatalf("%s: type %s, want %s", what, got.DType, want.DType)
	}
	if got.Len() != want.Len() {
		t.Fatalf("%s: shape %v, want %v", what, got.Shape, want.Shape)
	}
	switch want.DType {
	case Int64:
		for i, w := range want.Int64 {
			if got.Int64[i] != w {
				t.Fatalf("%s[%d] = %d, want %d", what, i, got.Int64[i], w)
			}
		}
	case String:
		for i, w := range want.String {
			if got.String[i] != w {
				t.Fatalf("%s[%d] = %q, want %q", what, i, got.String[i], w)
			}
		}
	default:
		g64, w64 := &Tensor{}, &Tensor{}
		if err := castInto(g64, got, Float64); err != nil {
			t.Fatal(err)
		}
		if err := castInto(w64, want, Float64); err != nil {
			t.Fatal(err)
		}
		for i, w := range w64.Float64 {
			g := g64.Float64[i]
			if d := math.Abs(g - w); d > tol && d > tol*math.Abs(w) || math.IsNaN(g) != math.IsNaN(w) {
				t.Fatalf("%s[%d] = %v, want %v", what, i, g, w)
			}
		}
	}
}
