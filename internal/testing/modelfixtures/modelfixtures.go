// Package modelfixtures reads the model fixtures of internal/model/testdata/models for the
// tests of the packages that serve them (OIP, workers, local mode): each NAME.onnx was exported
// from its framework (XGBoost, scikit-learn, PyTorch) by hack/modelfixtures, and NAME.json holds
// inputs and the framework's own answers for them. Tests check the data plane's answers against
// those, never against the runtime's.
package modelfixtures

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// Dir is the folder of the fixtures.
func Dir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "model", "testdata", "models")
}

// Tensor is one input or output of a fixture, as NAME.json writes it.
type Tensor struct {
	Name     string  `json:"name"`
	Datatype string  `json:"datatype"`
	Shape    []int64 `json:"shape"`
	// Data is row-major; a missing reading (NaN) is null.
	Data []*json.Number `json:"data"`
	// ZipmapLabels, for a ZipMap output, are the labels of its columns.
	ZipmapLabels []json.Number `json:"zipmap_labels"`
}

// Fixture is a model file and the framework's answers.
type Fixture struct {
	Name string
	// Path is the .onnx file.
	Path    string
	Inputs  []Tensor `json:"inputs"`
	Outputs []Tensor `json:"outputs"`
}

// Load reads fixture name.
func Load(t testing.TB, name string) *Fixture {
	t.Helper()
	f := &Fixture{Name: name, Path: filepath.Join(Dir(), name+".onnx")}
	b, err := os.ReadFile(filepath.Join(Dir(), name+".json"))
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(f); err != nil {
		t.Fatalf("fixture %s: %v", name, err)
	}
	return f
}

// Rows is the number of rows (axis 0) of the fixture's inputs.
func (f *Fixture) Rows() int { return int(f.Inputs[0].Shape[0]) }

// RowSize is the number of values one row of t holds.
func (t *Tensor) RowSize() int {
	n := 1
	for _, d := range t.Shape[1:] {
		n *= int(d)
	}
	return n
}

// Row returns row i of t as JSON values (numbers as written, null for NaN).
func (t *Tensor) Row(i int) []*json.Number {
	n := t.RowSize()
	return t.Data[i*n : (i+1)*n]
}

// Float is value i of t, NaN for null.
func (t *Tensor) Float(i int) float64 {
	if t.Data[i] == nil {
		return math.NaN()
	}
	v, err := t.Data[i].Float64()
	if err != nil {
		panic(err)
	}
	return v
}

// CompleteRows lists the rows whose inputs have no missing reading: JSON has no NaN, so only
// those can travel through OIP's data arrays and ingestion's features.
func (f *Fixture) CompleteRows() []int {
	var rows []int
next:
	for i := range f.Rows() {
		for k := range f.Inputs {
			for _, v := range f.Inputs[k].Row(i) {
				if v == nil {
					continue next
				}
			}
		}
		rows = append(rows, i)
	}
	return rows
}

// Close tells whether got is want within tol, absolutely or relatively: the runtime computes in
// float32 where the frameworks may not.
func Close(got, want, tol float64) bool {
	d := math.Abs(got - want)
	return d <= tol || d <= tol*math.Abs(want)
}
