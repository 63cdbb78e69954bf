// Package modelfixtures reads the model fixtures of internal/model/testdata/models for the
// tests of the packages that serve them (OIP, workers, local mode): each NAME.onnx was exported
// from its framework (XGBoost, scikit-learn, PyTorch) by hack/modelfixtures, and NAME.json holds
// inputs and the framework's own answers for them. Tests check the data plane's answers against
// those, never against the runtime's.
package modelfixtures

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strings"
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

// torchNumeric are the columns of the PyTorch net's numeric input (hack/modelfixtures'
// NUMERIC_FEATURES); its transport_mode input takes the mode id.
var torchNumeric = []string{"distance_km", "carrier_on_time_rate", "port_congestion_index", "weather_severity",
	"month_sin", "month_cos", "customs_complexity", "dwell_time_hours"}

// FeatureNames names the features of each input, for a pipeline that feeds the fixture from
// events: the PyTorch net's numeric columns and its mode, f0…fN-1 for a model of one input.
func (f *Fixture) FeatureNames() [][]string {
	names := make([][]string, len(f.Inputs))
	for k, in := range f.Inputs {
		switch {
		case in.Name == "numeric" && in.RowSize() == len(torchNumeric):
			names[k] = torchNumeric
		case in.Name == "transport_mode":
			names[k] = []string{"mode"}
		default:
			for j := range in.RowSize() {
				names[k] = append(names[k], fmt.Sprintf("f%d", j))
			}
		}
	}
	return names
}

// EventFeatures is row r of every input as an event's features object: name → value as the
// fixture writes it.
func (f *Fixture) EventFeatures(r int) string {
	var b strings.Builder
	b.WriteByte('{')
	for k, names := range f.FeatureNames() {
		for j, v := range f.Inputs[k].Row(r) {
			if b.Len() > 1 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, "%q:%s", names[j], v)
		}
	}
	b.WriteByte('}')
	return b.String()
}

// EventsNDJSON is rows of every input as NDJSON events for ingestion, one line per row with id
// row-R and the features named by names (one list per input, as FeatureNames gives them).
func (f *Fixture) EventsNDJSON(rows []int, names [][]string) string {
	var body strings.Builder
	for _, r := range rows {
		fmt.Fprintf(&body, `{"id":"row-%d","features":{`, r)
		for k, in := range f.Inputs {
			for j, v := range in.Row(r) {
				if k > 0 || j > 0 {
					body.WriteByte(',')
				}
				fmt.Fprintf(&body, "%q:%s", names[k][j], v)
			}
		}
		body.WriteString("}}\n")
	}
	return body.String()
}

// CheckRecord compares a pipeline's prediction record (internal/event) of row r with the
// framework's answers: every output, integers exactly, floats within 1e-5, and a ZipMap
// output's labels.
func (f *Fixture) CheckRecord(t testing.TB, record []byte, r int) {
	t.Helper()
	var rec struct {
		Outputs map[string][]json.Number `json:"outputs"`
		Labels  map[string][]json.Number `json:"labels"`
	}
	dec := json.NewDecoder(bytes.NewReader(record))
	dec.UseNumber()
	if err := dec.Decode(&rec); err != nil {
		t.Fatalf("record %s: %v", record, err)
	}
	if len(rec.Outputs) != len(f.Outputs) {
		t.Errorf("record %s has %d outputs, the model %d", record, len(rec.Outputs), len(f.Outputs))
	}
	for _, want := range f.Outputs {
		got := rec.Outputs[want.Name]
		n := want.RowSize()
		if len(got) != n {
			t.Errorf("row %d: %s has %d values, want %d: %s", r, want.Name, len(got), n, record)
			continue
		}
		for j := range n {
			w := want.Data[r*n+j]
			if want.Datatype != "FP32" {
				if got[j] != *w {
					t.Errorf("row %d: %s[%d] = %s, the framework says %s", r, want.Name, j, got[j], w)
				}
				continue
			}
			g, _ := got[j].Float64()
			if wf := want.Float(r*n + j); !Close(g, wf, 1e-5) {
				t.Errorf("row %d: %s[%d] = %v, the framework says %v", r, want.Name, j, g, wf)
			}
		}
		if fmt.Sprint(rec.Labels[want.Name]) != fmt.Sprint(want.ZipmapLabels) {
			t.Errorf("row %d: %s labels %v, the framework's %v", r, want.Name, rec.Labels[want.Name], want.ZipmapLabels)
		}
	}
}
