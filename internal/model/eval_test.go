package model

import (
	"encoding/binary"
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/freightcast/freightcast/internal/onnxpb"
	"github.com/google/go-cmp/cmp"
)

func typedInfo(name string, typ int32, dims ...int64) onnxpb.ValueInfo {
	vi := tensorInfo(name, dims...)
	vi.ElemType = typ
	return vi
}

func mustLoad(t *testing.T, g graphSpec) *Model {
	t.Helper()
	m, err := Load(g.modelBytes())
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return m
}

// TestEvalTyped runs a model with an INT64 and a BOOL input and three outputs of three types,
// and asks for some of them only.
func TestEvalTyped(t *testing.T) {
	m := mustLoad(t, graphSpec{
		nodes: []onnxpb.Node{
			node("Gather", []string{"table", "ids"}, []string{"emb"}),
			node("ReduceSum", []string{"emb", "one"}, []string{"sum"}, intAttr("keepdims", 0)),
			node("Cast", []string{"flag"}, []string{"flag_f"}, intAttr("to", int64(onnxpb.TypeFloat))),
			node("Mul", []string{"sum", "flag_f"}, []string{"score"}),
			node("Greater", []string{"score", "zero"}, []string{"positive"}),
			node("ArgMax", []string{"emb"}, []string{"best"}, intAttr("axis", 1), intAttr("keepdims", 0)),
		},
		inits: []onnxpb.Tensor{
			floatInit("table", []int64{3, 2}, []float32{1, 2, -3, -4, 5, 0.5}),
			int64Init("one", 1),
			floatInit("zero", []int64{}, []float32{0}),
		},
		inputs:  []onnxpb.ValueInfo{typedInfo("ids", onnxpb.TypeInt64, -1), typedInfo("flag", onnxpb.TypeBool, -1)},
		outputs: []onnxpb.ValueInfo{tensorInfo("score", -1), typedInfo("positive", onnxpb.TypeBool, -1), typedInfo("best", onnxpb.TypeInt64, -1)},
	})
	wantMeta := []TensorInfo{
		{Name: "score", DataType: "FP32", Shape: []int64{-1}, DType: Float32, Type: "tensor(float)"},
		{Name: "positive", DataType: "BOOL", Shape: []int64{-1}, DType: Bool, Type: "tensor(bool)"},
		{Name: "best", DataType: "INT64", Shape: []int64{-1}, DType: Int64, Type: "tensor(int64)"},
	}
	if diff := cmp.Diff(wantMeta, m.Metadata().Outputs); diff != "" {
		t.Errorf("outputs (-want +got):\n%s", diff)
	}
	if err := m.Metadata().CheckRows(); err == nil || !strings.Contains(err.Error(), `"ids" is a tensor(int64)`) {
		t.Errorf("CheckRows = %v, want a refusal naming the INT64 input", err)
	}
	ids := NewTensor([]int{4}, []int64{0, 1, 2, -1})
	flags := NewTensor([]int{4}, []bool{true, true, false, true})
	score, positive, best := &Tensor{}, &Tensor{}, &Tensor{}
	if err := m.Eval([]*Tensor{ids, flags}, []*Tensor{score, positive, best}); err != nil {
		t.Fatal(err)
	}
	// Rows: table[0]=(1,2), table[1]=(-3,-4), table[2]=(5,0.5), table[-1]=table[2].
	if diff := cmp.Diff([]float32{3, -7, 0, 5.5}, score.Float32); diff != "" {
		t.Errorf("score (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]bool{true, false, false, true}, positive.Bool); diff != "" {
		t.Errorf("positive (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]int64{1, 0, 0, 0}, best.Int64); diff != "" {
		t.Errorf("best (-want +got):\n%s", diff)
	}
	// Only "best": the Cast, Mul and Greater steps are skipped, the answer is the same.
	only := &Tensor{}
	if err := m.Eval([]*Tensor{ids, flags}, []*Tensor{nil, nil, only}); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(best.Int64, only.Int64); diff != "" {
		t.Errorf("best alone (-want +got):\n%s", diff)
	}
	// Bad inputs are refused with ErrInvalidInput and say what is wrong.
	cases := map[string]struct {
		in   []*Tensor
		want string
	}{
		"wrong type":      {in: []*Tensor{NewTensor([]int{4}, []int32{0, 1, 2, 0}), flags}, want: `input "ids": has type INT32, the model takes INT64`},
		"wrong rank":      {in: []*Tensor{NewTensor([]int{2, 2}, []int64{0, 1, 2, 0}), flags}, want: `input "ids": has shape [2 2], the model takes [-1]`},
		"batch disagrees": {in: []*Tensor{NewTensor([]int{3}, []int64{0, 1, 2}), flags}, want: "has 4 on axis 0, where another input has 3"},
		"short data":      {in: []*Tensor{{DType: Int64, Shape: []int{4}, Int64: []int64{1}}, flags}, want: "shape [4] needs 4 values, the tensor holds 1"},
		"index too large": {in: []*Tensor{NewTensor([]int{4}, []int64{0, 1, 3, 0}), flags}, want: "index 3 is out of range for axis 0 of size 3"},
		"index too small": {in: []*Tensor{NewTensor([]int{4}, []int64{0, -4, 1, 0}), flags}, want: "index -4 is out of range"},
		"missing input":   {in: []*Tensor{nil, flags}, want: `input "ids" is missing`},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			err := m.Eval(tc.in, []*Tensor{{}, nil, nil})
			if !errors.Is(err, ErrInvalidInput) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Eval error %v, want an ErrInvalidInput containing %q", err, tc.want)
			}
		})
	}
}

// TestEvalDoesNotAllocate: a caller that keeps its output tensors runs the PyTorch net (two
// typed inputs) without allocating, at a small and a chunked batch.
func TestEvalDoesNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items at random under the race detector")
	}
	m, inputs, _, _ := readOIPFixture(t, "torch_tabular_opset13")
	for _, rows := range []int{1, 48} {
		in := []*Tensor{
			NewTensor([]int{rows, 8}, inputs[0].Float32[:rows*8]),
			NewTensor([]int{rows}, inputs[1].Int64[:rows]),
		}
		out := []*Tensor{{}}
		allocs := testing.AllocsPerRun(50, func() {
			if err := m.Eval(in, out); err != nil {
				t.Fatal(err)
			}
		})
		if allocs != 0 {
			t.Errorf("batch %d: %v allocations per Eval", rows, allocs)
		}
	}
}

// TestDynamicShapeChain is what PyTorch writes for x.view(x.size(0), -1): the batch size read
// with Shape and Gather, put back with Unsqueeze, Concat and Reshape. The output keeps its
// symbolic batch and its fixed row, and runs at any batch.
func TestDynamicShapeChain(t *testing.T) {
	m := mustLoad(t, graphSpec{
		nodes: []onnxpb.Node{
			node("Shape", []string{"x"}, []string{"shape"}),
			node("Gather", []string{"shape", "zero"}, []string{"n"}, intAttr("axis", 0)),
			node("Unsqueeze", []string{"n", "axes"}, []string{"n1"}),
			node("Concat", []string{"n1", "minus_one"}, []string{"target"}, intAttr("axis", 0)),
			node("Reshape", []string{"x", "target"}, []string{"flat"}),
			node("Relu", []string{"flat"}, []string{"y"}),
		},
		inits: []onnxpb.Tensor{
			{Name: "zero", DataType: onnxpb.TypeInt64, Int64Data: []int64{0}},
			int64Init("axes", 0),
			int64Init("minus_one", -1),
		},
		inputs:  []onnxpb.ValueInfo{tensorInfo("x", -1, 3, 4)},
		outputs: []onnxpb.ValueInfo{{Name: "y", Kind: onnxpb.KindUndefined}},
	})
	if diff := cmp.Diff([]int64{-1, 12}, m.Metadata().Outputs[0].Shape); diff != "" {
		t.Errorf("output shape (-want +got):\n%s", diff)
	}
	if err := m.Metadata().CheckRows(); err != nil {
		t.Errorf("CheckRows: %v", err)
	}
	for _, rows := range []int{0, 1, 5} {
		x := make([]float32, rows*12)
		for i := range x {
			x[i] = float32(i%7) - 3
		}
		got := make([]float32, rows*12)
		if err := m.Run(rows, [][]float32{x}, [][]float32{got}); err != nil && rows > 0 {
			t.Fatalf("batch %d: %v", rows, err)
		}
		for i, v := range x {
			if want := max(v, 0); got[i] != want {
				t.Fatalf("batch %d element %d: %v, want %v", rows, i, got[i], want)
			}
		}
		out := []*Tensor{{}}
		err := m.Eval([]*Tensor{NewTensor([]int{rows, 3, 4}, x)}, out)
		if rows == 0 {
			// numpy and onnxruntime refuse it too: -1 cannot be inferred from zero elements.
			if !errors.Is(err, ErrInvalidInput) || !strings.Contains(err.Error(), "cannot reshape [0 3 4]") {
				t.Errorf("Eval batch 0: %v, want the reshape refused", err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("Eval batch %d: %v", rows, err)
		}
		if diff := cmp.Diff([]int{rows, 12}, out[0].Shape); diff != "" {
			t.Errorf("Eval batch %d shape (-want +got):\n%s", rows, diff)
		}
	}
}

// TestConstantForms covers every attribute form of Constant and INT32 and BOOL initializers in
// raw_data.
func TestConstantForms(t *testing.T) {
	raw32 := make([]byte, 8)
	minus7 := int32(-7)
	binary.LittleEndian.PutUint32(raw32, uint32(minus7))
	binary.LittleEndian.PutUint32(raw32[4:], 9)
	cases := map[string]struct {
		attr onnxpb.Attribute
		want *Tensor
	}{
		"value_float":   {attr: floatAttr("value_float", 2.5), want: NewTensor([]int{}, []float32{2.5})},
		"value_floats":  {attr: onnxpb.Attribute{Name: "value_floats", Type: onnxpb.AttrFloats, Floats: []float32{1, float32(math.Inf(-1))}}, want: NewTensor([]int{2}, []float32{1, float32(math.Inf(-1))})},
		"value_int":     {attr: intAttr("value_int", -3), want: NewTensor([]int{}, []int64{-3})},
		"value_ints":    {attr: onnxpb.Attribute{Name: "value_ints", Type: onnxpb.AttrInts, Ints: []int64{4, 5}}, want: NewTensor([]int{2}, []int64{4, 5})},
		"value_string":  {attr: onnxpb.Attribute{Name: "value_string", Type: onnxpb.AttrString, S: []byte("air")}, want: NewTensor([]int{}, []string{"air"})},
		"value_strings": {attr: onnxpb.Attribute{Name: "value_strings", Type: onnxpb.AttrStrings, Strings: [][]byte{[]byte("ocean"), []byte("rail")}}, want: NewTensor([]int{2}, []string{"ocean", "rail"})},
		"value int32 raw": {attr: onnxpb.Attribute{Name: "value", Type: onnxpb.AttrTensor,
			T: &onnxpb.Tensor{Dims: []int64{2}, DataType: onnxpb.TypeInt32, RawData: raw32}}, want: NewTensor([]int{2}, []int32{-7, 9})},
		"value bool raw": {attr: onnxpb.Attribute{Name: "value", Type: onnxpb.AttrTensor,
			T: &onnxpb.Tensor{Dims: []int64{3}, DataType: onnxpb.TypeBool, RawData: []byte{1, 0, 1}}}, want: NewTensor([]int{3}, []bool{true, false, true})},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			// Identity(x) keeps the graph an input; the constant is a second output.
			m := mustLoad(t, graphSpec{
				nodes: []onnxpb.Node{
					{OpType: "Constant", Outputs: []string{"c"}, Attributes: []onnxpb.Attribute{tc.attr}},
					node("Identity", []string{"x"}, []string{"y"}),
				},
				inputs:  []onnxpb.ValueInfo{tensorInfo("x", -1)},
				outputs: []onnxpb.ValueInfo{tensorInfo("y", -1), {Name: "c", Kind: onnxpb.KindUndefined}},
			})
			out := []*Tensor{nil, {}}
			if err := m.Eval([]*Tensor{NewTensor([]int{1}, []float32{0})}, out); err != nil {
				t.Fatal(err)
			}
			if d := compareTensors(tc.want, out[1], 0, 0); d != "" {
				t.Error(d)
			}
		})
	}
}
