package model

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/freightcast/freightcast/internal/onnxpb"
	onnx "github.com/owulveryck/onnx-go"
	"github.com/owulveryck/onnx-go/backend/x/gorgonnx"
	"gorgonia.org/tensor"
)

// graphSpec describes a small test model; modelBytes encodes it as a real ONNX file.
type graphSpec struct {
	nodes   []onnxpb.Node
	inits   []onnxpb.Tensor
	inputs  []onnxpb.ValueInfo
	outputs []onnxpb.ValueInfo
	opset   int64
	props   []onnxpb.StringString
}

func (g graphSpec) modelBytes() []byte {
	opset := g.opset
	if opset == 0 {
		opset = 13
	}
	m := &onnxpb.Model{
		IRVersion:     7,
		ProducerName:  "freightcast-test",
		OpsetImport:   []onnxpb.OperatorSet{{Version: opset}},
		MetadataProps: g.props,
		Graph: &onnxpb.Graph{
			Name:         "test",
			Nodes:        g.nodes,
			Initializers: g.inits,
			Inputs:       g.inputs,
			Outputs:      g.outputs,
		},
	}
	return m.Marshal()
}

// tensorInfo declares an FP32 value; -1 becomes the symbolic batch dimension "N".
func tensorInfo(name string, dims ...int64) onnxpb.ValueInfo {
	vi := onnxpb.ValueInfo{Name: name, ElemType: onnxpb.TypeFloat, HasShape: true}
	for _, d := range dims {
		if d < 0 {
			vi.Shape = append(vi.Shape, onnxpb.Dim{Param: "N"})
		} else {
			vi.Shape = append(vi.Shape, onnxpb.Dim{Value: d, Fixed: true})
		}
	}
	return vi
}

func floatInit(name string, dims []int64, data []float32) onnxpb.Tensor {
	return onnxpb.Tensor{Name: name, Dims: dims, DataType: onnxpb.TypeFloat, FloatData: data}
}

func int64Init(name string, data ...int64) onnxpb.Tensor {
	return onnxpb.Tensor{Name: name, Dims: []int64{int64(len(data))}, DataType: onnxpb.TypeInt64, Int64Data: data}
}

// randomInit is a float initializer of the given shape with seeded values in [-1, 1).
func randomInit(rng *rand.Rand, name string, dims ...int64) onnxpb.Tensor {
	n := int64(1)
	for _, d := range dims {
		n *= d
	}
	return floatInit(name, dims, randomFloats(rng, int(n)))
}

func randomFloats(rng *rand.Rand, n int) []float32 {
	xs := make([]float32, n)
	for i := range xs {
		xs[i] = rng.Float32()*2 - 1
	}
	return xs
}

func node(op string, ins, outs []string, attrs ...onnxpb.Attribute) onnxpb.Node {
	return onnxpb.Node{OpType: op, Inputs: ins, Outputs: outs, Name: op + "_" + outs[0], Attributes: attrs}
}

func intAttr(name string, v int64) onnxpb.Attribute {
	return onnxpb.Attribute{Name: name, Type: onnxpb.AttrInt, I: v}
}

func floatAttr(name string, v float32) onnxpb.Attribute {
	return onnxpb.Attribute{Name: name, Type: onnxpb.AttrFloat, F: v}
}

// runGorgonnx runs onnx-go's own gorgonia backend, the reference this package is checked against.
// shapes are the concrete input shapes (batch included).
func runGorgonnx(t testing.TB, data []byte, shapes [][]int, inputs [][]float32) [][]float32 {
	t.Helper()
	backend := gorgonnx.NewGraph()
	m := onnx.NewModel(backend)
	if err := m.UnmarshalBinary(data); err != nil {
		t.Fatalf("gorgonnx decode: %v", err)
	}
	for i, in := range inputs {
		backing := append([]float32(nil), in...)
		if err := m.SetInput(i, tensor.New(tensor.WithShape(shapes[i]...), tensor.WithBacking(backing))); err != nil {
			t.Fatalf("gorgonnx input %d: %v", i, err)
		}
	}
	if err := backend.Run(); err != nil {
		t.Fatalf("gorgonnx run: %v", err)
	}
	outs, err := m.GetOutputTensors()
	if err != nil {
		t.Fatalf("gorgonnx outputs: %v", err)
	}
	res := make([][]float32, len(outs))
	for i, o := range outs {
		switch d := o.Data().(type) {
		case []float32:
			res[i] = append([]float32(nil), d...)
		case float32:
			res[i] = []float32{d}
		default:
			t.Fatalf("gorgonnx output %d is %T", i, d)
		}
	}
	return res
}

// runOurs loads data with this package and runs it on rows rows.
func runOurs(t testing.TB, data []byte, rows int, inputs [][]float32) [][]float32 {
	t.Helper()
	m, err := Load(data)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	outs := make([][]float32, len(m.Metadata().Outputs))
	for i, o := range m.Metadata().Outputs {
		outs[i] = make([]float32, rows*o.RowSize())
	}
	if err := m.Run(rows, inputs, outs); err != nil {
		t.Fatalf("Run: %v", err)
	}
	return outs
}

// diffFloats reports the first element where got and want differ by more than tol (absolute,
// or relative for large values).
func diffFloats(want, got []float32, tol float64) string {
	if len(want) != len(got) {
		return fmt.Sprintf("length: want %d, got %d", len(want), len(got))
	}
	for i := range want {
		w, g := float64(want[i]), float64(got[i])
		if math.IsNaN(w) != math.IsNaN(g) || math.Abs(w-g) > tol*math.Max(1, math.Abs(w)) {
			return fmt.Sprintf("element %d: want %v, got %v", i, w, g)
		}
	}
	return ""
}
