package model

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"
)

// modelFixtures holds real exported models with their frameworks' own answers
// (hack/modelfixtures writes them: NAME.onnx and NAME.json).
const modelFixtures = "testdata/models"

// oipFixture is NAME.json: inputs and the framework's outputs in Open Inference Protocol form,
// flat row-major data, null for NaN.
type oipFixture struct {
	Model   string          `json:"model"`
	Source  string          `json:"source"`
	Inputs  []oipFixtureVal `json:"inputs"`
	Outputs []oipFixtureVal `json:"outputs"`
}

type oipFixtureVal struct {
	Name     string            `json:"name"`
	DataType string            `json:"datatype"`
	Shape    []int             `json:"shape"`
	Data     []json.RawMessage `json:"data"`
	// ZipMapLabels, for a ZipMap output, are the class labels its probabilities follow.
	ZipMapLabels []json.RawMessage `json:"zipmap_labels,omitempty"`
}

// readOIPFixture loads testdata/models/NAME.onnx and NAME.json: the model, its inputs and the
// framework's outputs as tensors, in the fixture's order.
func readOIPFixture(t testing.TB, name string) (m *Model, inputs, outputs []*Tensor, fx oipFixture) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(modelFixtures, name+".onnx"))
	if err != nil {
		t.Fatal(err)
	}
	if m, err = Load(data); err != nil {
		t.Fatalf("Load %s: %v", name, err)
	}
	raw, err := os.ReadFile(filepath.Join(modelFixtures, name+".json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &fx); err != nil {
		t.Fatalf("%s.json: %v", name, err)
	}
	for _, v := range fx.Inputs {
		inputs = append(inputs, fixtureTensor(t, v))
	}
	for _, v := range fx.Outputs {
		outputs = append(outputs, fixtureTensor(t, v))
	}
	return m, inputs, outputs, fx
}

// fixtureTensor converts one OIP tensor of a fixture.
func fixtureTensor(t testing.TB, v oipFixtureVal) *Tensor {
	t.Helper()
	dt, err := DTypeFromOIP(v.DataType)
	if err != nil {
		t.Fatalf("%s: %v", v.Name, err)
	}
	out := &Tensor{}
	if err := out.reset(dt, v.Shape...); err != nil {
		t.Fatalf("%s: %v", v.Name, err)
	}
	if len(v.Data) != out.Len() {
		t.Fatalf("%s: %d values for shape %v", v.Name, len(v.Data), v.Shape)
	}
	for i, r := range v.Data {
		var err error
		switch dt {
		case String:
			err = json.Unmarshal(r, &out.String[i])
		case Bool:
			err = json.Unmarshal(r, &out.Bool[i])
		case Int64:
			err = json.Unmarshal(r, &out.Int64[i])
		case Int32:
			err = json.Unmarshal(r, &out.Int32[i])
		default:
			var f *float64
			if err = json.Unmarshal(r, &f); err == nil {
				nan := &Tensor{DType: Float64, Shape: []int{}, Float64: []float64{math.NaN()}}
				if f != nil {
					nan.Float64[0] = *f
				}
				one := &Tensor{}
				if err = castInto(one, nan, dt); err == nil {
					copyElems(out, i, one, 0, 1)
				}
			}
		}
		if err != nil {
			t.Fatalf("%s value %d: %v", v.Name, i, err)
		}
	}
	return out
}
