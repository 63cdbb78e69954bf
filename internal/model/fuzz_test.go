package model

import (
	"errors"
	"math"
	"os"
	"slices"
	"testing"

	"github.com/freightcast/freightcast/internal/onnxpb"
)

// FuzzLoad feeds arbitrary bytes to Load with panic recovery off: any input must give a model or
// an error wrapping ErrInvalidModel or ErrUnsupported, and a model must run (or refuse its
// input with ErrInvalidInput) on inputs of every shape it declares. The seed corpus
// (testdata/fuzz/FuzzLoad) holds the freight model, the PyTorch net and small graphs of every
// supported operator.
func FuzzLoad(f *testing.F) {
	for _, path := range []string{freightModel, modelFixtures + "/torch_tabular_opset13.onnx", modelFixtures + "/torch_tabular_opset17.onnx"} {
		if data, err := os.ReadFile(path); err == nil {
			f.Add(data)
		}
	}
	for _, tc := range opCases() {
		f.Add(tc.spec.modelBytes())
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		recoverPanics = false
		defer func() { recoverPanics = true }()
		m, err := Load(data)
		if err != nil {
			if !errors.Is(err, ErrInvalidModel) && !errors.Is(err, ErrUnsupported) {
				t.Fatalf("error %v wraps neither ErrInvalidModel nor ErrUnsupported", err)
			}
			return
		}
		runAnyInputs(t, m, []byte{1, 3, 0})
	})
}

// runAnyInputs runs a loaded model on inputs of the declared types, each symbolic dimension
// taking the next size from sizes; values are small and varied. Errors must wrap
// ErrInvalidInput; nothing may panic.
func runAnyInputs(t *testing.T, m *Model, sizes []byte) {
	meta := m.Metadata()
	for _, size := range sizes {
		ins := make([]*Tensor, len(meta.Inputs))
		for i, in := range meta.Inputs {
			shape := make([]int, len(in.Shape))
			for d, v := range in.Shape {
				shape[d] = int(v)
				if v < 0 {
					shape[d] = int(size)
				}
			}
			n, err := elements(shape)
			if err != nil || n > 1<<16 {
				return // a valid but huge input; running it proves nothing more
			}
			ins[i] = &Tensor{}
			if err := ins[i].reset(in.DType, shape...); err != nil {
				t.Fatalf("input %q: %v", in.Name, err)
			}
			fillValues(ins[i], i)
		}
		outs := make([]*Tensor, len(meta.Outputs))
		for i := range outs {
			outs[i] = &Tensor{}
		}
		if err := m.Eval(ins, outs); err != nil && !errors.Is(err, ErrInvalidInput) {
			t.Fatalf("Eval error %v does not wrap ErrInvalidInput", err)
		}
		if meta.CheckRows() == nil && size > 0 {
			rows := int(size)
			fin := make([][]float32, len(meta.Inputs))
			for i, in := range meta.Inputs {
				if in.Shape[0] >= 0 {
					rows = int(in.Shape[0])
				}
				fin[i] = make([]float32, rows*in.RowSize())
			}
			fout := make([][]float32, len(meta.Outputs))
			for i, o := range meta.Outputs {
				fout[i] = make([]float32, rows*o.RowSize())
			}
			if err := m.Run(rows, fin, fout); err != nil && !errors.Is(err, ErrInvalidInput) {
				t.Fatalf("Run error %v does not wrap ErrInvalidInput", err)
			}
		}
	}
}

// fillValues puts small varied values into a tensor: negatives, zeros, and for integers
// values that are valid indices of small axes as well as ones that are not.
func fillValues(t *Tensor, seed int) {
	vals := []float64{0, 1, -1, 2, 0.5, -3, 7, math.NaN(), math.Inf(1)}
	src := &Tensor{DType: Float64, Shape: []int{1}, Float64: []float64{0}}
	one := &Tensor{}
	for i := range t.Len() {
		v := vals[(i+seed)%len(vals)]
		switch t.DType {
		case String:
			t.String[i] = []string{"a", "", "7", "x y"}[(i+seed)%4]
			continue
		case Bool:
			t.Bool[i] = (i+seed)%2 == 0
			continue
		}
		if !t.DType.isFloat() && (math.IsNaN(v) || math.IsInf(v, 0)) {
			v = 1
		}
		src.Float64[0] = v
		if castInto(one, src, t.DType) == nil {
			copyElems(t, i, one, 0, 1)
		}
	}
}

// FuzzGraph builds hostile graphs from the fuzzer's bytes — any supported operator, inputs
// taken from earlier values, later ones (cycles) or nowhere (dangling), random attributes
// (NaN, infinities, huge and negative values), initializers with NaN, wrong lengths and huge
// dimensions, inputs of every type with zero-sized, huge or symbolic dimensions — and checks
// that Load refuses them cleanly or that the model runs (or refuses its input) without a panic.
func FuzzGraph(f *testing.F) {
	for _, seed := range [][]byte{
		{0}, {1, 2, 3, 4, 5, 6, 7, 8}, {9, 200, 13, 77, 4, 1, 0, 255, 3, 3},
		[]byte("Gather out of range, rank bombs, overflowing shapes"),
		[]byte{3, 1, 0, 1, 40, 2, 0, 7, 7, 7, 1, 1, 1, 1, 1, 250, 251, 252},
	} {
		f.Add(seed)
	}
	ops := supportedOps(domainONNX)
	f.Fuzz(func(t *testing.T, spec []byte) {
		recoverPanics = false
		defer func() { recoverPanics = true }()
		g := &graphGen{b: spec}
		data := g.model(ops).Marshal()
		m, err := Load(data)
		if err != nil {
			if !errors.Is(err, ErrInvalidModel) && !errors.Is(err, ErrUnsupported) {
				t.Fatalf("error %v wraps neither ErrInvalidModel nor ErrUnsupported", err)
			}
			return
		}
		runAnyInputs(t, m, []byte{1, 0, 2})
	})
}

// graphGen draws a graph from bytes; past the end every draw is 0. In tame mode (three spec
// bytes in four) it draws what loads more often — float and int64 inputs with a batch,
// initializers that fill their shapes, nodes over earlier values, plausible attributes — so
// that the executor, not only the compiler's refusals, gets exercised.
type graphGen struct {
	b    []byte
	i    int
	tame bool
}

func (g *graphGen) next() int {
	if g.i >= len(g.b) {
		return 0
	}
	g.i++
	return int(g.b[g.i-1])
}

func (g *graphGen) pick(n int) int { return g.next() % max(n, 1) }

var fuzzDims = []int64{0, 1, 2, 3, 4, 7, -1, -1, 1 << 20, 1 << 40, math.MaxInt64}

var fuzzInts = []int64{0, 1, -1, 2, -2, 3, 7, 1 << 31, -(1 << 40), math.MaxInt64, math.MinInt64}

var fuzzFloats = []float32{0, 1, -1, 0.5, 1e-5, 3e38, float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1))}

var fuzzTypes = []int32{onnxpb.TypeFloat, onnxpb.TypeDouble, onnxpb.TypeInt64, onnxpb.TypeInt32, onnxpb.TypeBool,
	onnxpb.TypeString, onnxpb.TypeUint8, onnxpb.TypeFloat16}

// fuzzAttrs are attribute names operators read.
var fuzzAttrs = []string{"axis", "axes", "perm", "keepdims", "alpha", "beta", "to", "transA", "transB", "epsilon",
	"split", "starts", "ends", "value", "mode", "select_last_index", "largest", "k", "allowzero", "fmod",
	"noop_with_empty_axes", "approximate", "min", "max", "num_outputs", "start", "end", "value_ints", "value_float",
	"reduction", "ignore_index", "batch_dims", "upper", "dtype", "exclusive", "reverse", "direction", "lambd", "bias",
	"detect_negative", "detect_positive", "blocksize", "batch_axis", "time_axis",
	"case_change_action", "is_case_sensitive", "locale",
	// the sliding windows of convolution and pooling
	"kernel_shape", "strides", "pads", "dilations", "group", "auto_pad", "ceil_mode", "output_shape", "output_padding",
	"storage_order", "count_include_pad"}

func (g *graphGen) model(ops []string) *onnxpb.Model {
	g.tame = g.pick(4) != 0
	var values []string
	gr := &onnxpb.Graph{Name: "fuzz"}
	for i := range 1 + g.pick(3) {
		name := "in" + string(rune('0'+i))
		vi := onnxpb.ValueInfo{Name: name, ElemType: fuzzTypes[g.pick(len(fuzzTypes))], HasShape: g.pick(8) != 0}
		if g.tame {
			vi.ElemType, vi.HasShape = []int32{onnxpb.TypeFloat, onnxpb.TypeFloat, onnxpb.TypeInt64}[g.pick(3)], true
			vi.Shape = append(vi.Shape, onnxpb.Dim{Param: "N"})
			if vi.ElemType == onnxpb.TypeFloat {
				vi.Shape = append(vi.Shape, onnxpb.Dim{Value: int64(1 + g.pick(4)), Fixed: true})
			}
			gr.Inputs = append(gr.Inputs, vi)
			values = append(values, name)
			continue
		}
		for range g.pick(5) {
			d := fuzzDims[g.pick(len(fuzzDims))]
			if d == -1 {
				vi.Shape = append(vi.Shape, onnxpb.Dim{Param: []string{"N", "M"}[g.pick(2)]})
			} else if d >= 0 {
				vi.Shape = append(vi.Shape, onnxpb.Dim{Value: d, Fixed: true})
			}
		}
		gr.Inputs = append(gr.Inputs, vi)
		values = append(values, name)
	}
	for i := range g.pick(4) {
		name := "w" + string(rune('0'+i))
		gr.Initializers = append(gr.Initializers, g.tensor(name))
		values = append(values, name)
	}
	nodes, arity, outs, attrs := 1+g.pick(10), 4, 2, 4
	if g.tame {
		nodes, arity, outs, attrs = 1+g.pick(3), 3, 1, 2
	}
	for i := range nodes {
		n := onnxpb.Node{OpType: ops[g.pick(len(ops))], Name: "n" + string(rune('a'+i))}
		for range g.pick(arity) + min(1, arity-3) {
			switch g.pick(12) {
			case 0, 1:
				if g.tame {
					n.Inputs = append(n.Inputs, values[len(values)-1-g.pick(2)%len(values)])
					continue
				}
			}
			switch g.pick(12) {
			case 0:
				n.Inputs = append(n.Inputs, "") // omitted optional input
			case 1:
				n.Inputs = append(n.Inputs, "v"+string(rune('a'+g.pick(12)))) // later value or nowhere
			default:
				n.Inputs = append(n.Inputs, values[g.pick(len(values))])
			}
		}
		for j := range 1 + g.pick(outs) {
			n.Outputs = append(n.Outputs, "v"+string(rune('a'+i))+string(rune('0'+j)))
		}
		for range g.pick(attrs) {
			n.Attributes = append(n.Attributes, g.attribute())
		}
		gr.Nodes = append(gr.Nodes, n)
		values = append(values, n.Outputs...)
	}
	for range 1 + g.pick(2) {
		gr.Outputs = append(gr.Outputs, onnxpb.ValueInfo{Name: values[len(values)-1-g.pick(3)%len(values)], Kind: onnxpb.KindUndefined})
	}
	opset := int64(7 + g.pick(16))
	if g.tame {
		opset = []int64{13, 17, 18}[g.pick(3)]
	}
	return &onnxpb.Model{IRVersion: 8, OpsetImport: []onnxpb.OperatorSet{{Version: opset}}, Graph: gr}
}

func (g *graphGen) attribute() onnxpb.Attribute {
	a := onnxpb.Attribute{Name: fuzzAttrs[g.pick(len(fuzzAttrs))]}
	if g.tame {
		switch g.pick(3) {
		case 0:
			a.Type, a.I = onnxpb.AttrInt, int64(g.pick(4)-1)
		case 1:
			a.Type = onnxpb.AttrInts
			for range 1 + g.pick(2) {
				a.Ints = append(a.Ints, int64(g.pick(4)-1))
			}
		default:
			a.Type, a.F = onnxpb.AttrFloat, fuzzFloats[g.pick(len(fuzzFloats))]
		}
		return a
	}
	switch g.pick(6) {
	case 0:
		a.Type, a.I = onnxpb.AttrInt, fuzzInts[g.pick(len(fuzzInts))]
	case 1:
		a.Type, a.F = onnxpb.AttrFloat, fuzzFloats[g.pick(len(fuzzFloats))]
	case 2:
		a.Type = onnxpb.AttrInts
		for range g.pick(5) {
			a.Ints = append(a.Ints, fuzzInts[g.pick(len(fuzzInts))])
		}
	case 3:
		a.Type, a.S = onnxpb.AttrString, []byte([]string{"constant", "reflect", "edge", "tanh", "none", "?", "SAME_UPPER", "VALID"}[g.pick(8)])
	case 4:
		a.Type = onnxpb.AttrTensor
		t := g.tensor("")
		a.T = &t
	default:
		a.Type = onnxpb.AttrFloats
		for range g.pick(5) {
			a.Floats = append(a.Floats, fuzzFloats[g.pick(len(fuzzFloats))])
		}
	}
	return a
}

// tensor draws a small tensor; its data may not fill its shape, and its shape may be huge.
func (g *graphGen) tensor(name string) onnxpb.Tensor {
	t := onnxpb.Tensor{Name: name, DataType: fuzzTypes[g.pick(len(fuzzTypes))]}
	if g.tame {
		t.DataType = []int32{onnxpb.TypeFloat, onnxpb.TypeFloat, onnxpb.TypeInt64}[g.pick(3)]
	}
	n := int64(1)
	for range g.pick(4) {
		d := max(fuzzDims[g.pick(len(fuzzDims))], 0)
		if d > 4 && (g.tame || g.pick(4) != 0) {
			d = 3
		}
		t.Dims = append(t.Dims, d)
		if n < 1<<20 {
			n *= max(d, 1)
		}
	}
	count := min(n, 64)
	if !g.tame && g.pick(8) == 0 {
		count = int64(g.pick(5)) // wrong length
	}
	for i := range count {
		switch t.DataType {
		case onnxpb.TypeFloat:
			t.FloatData = append(t.FloatData, fuzzFloats[(int(i)+g.pick(3))%len(fuzzFloats)])
		case onnxpb.TypeDouble:
			t.DoubleData = append(t.DoubleData, float64(fuzzFloats[(int(i)+g.pick(3))%len(fuzzFloats)]))
		case onnxpb.TypeInt64:
			t.Int64Data = append(t.Int64Data, fuzzInts[(int(i)+g.pick(3))%len(fuzzInts)])
		case onnxpb.TypeString:
			t.StringData = append(t.StringData, []byte("s"))
		default:
			t.Int32Data = append(t.Int32Data, int32(fuzzInts[(int(i)+g.pick(3))%len(fuzzInts)]))
		}
	}
	return t
}

// FuzzDecodeONNX checks the validating decoder alone: never a panic, and what it accepts
// re-encodes to bytes it accepts again.
func FuzzDecodeONNX(f *testing.F) {
	for _, tc := range opCases() {
		f.Add(tc.spec.modelBytes())
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := onnxpb.Decode(data)
		if err != nil {
			return
		}
		if _, err := onnxpb.Decode(m.Marshal()); err != nil {
			t.Fatalf("re-encoded model does not decode: %v", err)
		}
		for i := range m.Graph.Initializers {
			pt := &m.Graph.Initializers[i]
			if _, err := tensorFromProto(pt); err != nil && !slices.Contains([]string{""}, err.Error()) {
				continue // refusing is fine; not panicking is the point
			}
		}
	})
}
