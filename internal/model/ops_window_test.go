package model

import (
	"errors"
	"math"
	"testing"

	"github.com/freightcast/freightcast/internal/onnxpb"
)

func stringAttr(name, v string) onnxpb.Attribute {
	return onnxpb.Attribute{Name: name, Type: onnxpb.AttrString, S: []byte(v)}
}

// TestWindowHostileAttributes gives the windowed operators attributes no exporter writes —
// huge, negative and zero kernels, strides, dilations and pads, windows larger than the input,
// outputs past the tensor limit — and checks that each is refused at load or at run with an
// error: never a panic, never a hang over a huge kernel, never an allocation past the limits.
func TestWindowHostileAttributes(t *testing.T) {
	big := int64(1 << 24)
	cases := map[string]struct {
		op    string
		attrs []onnxpb.Attribute
		w     []int64 // the weights' shape for Conv/ConvTranspose (an initializer)
	}{
		"Conv negative stride":          {"Conv", []onnxpb.Attribute{intsAttr("strides", -1, 1)}, []int64{2, 3, 2, 2}},
		"Conv zero dilation":            {"Conv", []onnxpb.Attribute{intsAttr("dilations", 0, 1)}, []int64{2, 3, 2, 2}},
		"Conv huge dilation":            {"Conv", []onnxpb.Attribute{intsAttr("dilations", big, big)}, []int64{2, 3, 2, 2}},
		"Conv overflowing pads":         {"Conv", []onnxpb.Attribute{intsAttr("pads", math.MaxInt64, 0, 0, 0)}, []int64{2, 3, 2, 2}},
		"Conv huge pads":                {"Conv", []onnxpb.Attribute{intsAttr("pads", big, big, big, big)}, []int64{2, 3, 2, 2}},
		"Conv negative pads":            {"Conv", []onnxpb.Attribute{intsAttr("pads", -3, 0, 0, 0)}, []int64{2, 3, 2, 2}},
		"Conv pads of the wrong length": {"Conv", []onnxpb.Attribute{intsAttr("pads", 1)}, []int64{2, 3, 2, 2}},
		"Conv kernel_shape disagrees":   {"Conv", []onnxpb.Attribute{intsAttr("kernel_shape", 3, 3)}, []int64{2, 3, 2, 2}},
		"Conv window over the input":    {"Conv", nil, []int64{2, 3, 9, 9}},
		"Conv zero-sized kernel":        {"Conv", nil, []int64{2, 3, 0, 2}},
		"Conv group zero":               {"Conv", []onnxpb.Attribute{intAttr("group", 0)}, []int64{2, 3, 2, 2}},
		"Conv group not dividing":       {"Conv", []onnxpb.Attribute{intAttr("group", 2)}, []int64{2, 3, 2, 2}},
		"Conv huge group":               {"Conv", []onnxpb.Attribute{intAttr("group", math.MaxInt64)}, []int64{2, 3, 2, 2}},
		"Conv bad auto_pad":             {"Conv", []onnxpb.Attribute{stringAttr("auto_pad", "SAME")}, []int64{2, 3, 2, 2}},
		"Conv weights of another rank":  {"Conv", nil, []int64{2, 3, 2}},
		"ConvTranspose huge output_shape": {"ConvTranspose",
			[]onnxpb.Attribute{intsAttr("output_shape", big, big)}, []int64{3, 2, 2, 2}},
		"ConvTranspose negative output_shape": {"ConvTranspose",
			[]onnxpb.Attribute{intsAttr("output_shape", -5, 4)}, []int64{3, 2, 2, 2}},
		"ConvTranspose pads cropping everything": {"ConvTranspose",
			[]onnxpb.Attribute{intsAttr("pads", 50, 50, 50, 50)}, []int64{3, 2, 2, 2}},
		"ConvTranspose output_padding past the stride": {"ConvTranspose",
			[]onnxpb.Attribute{intsAttr("output_padding", 5, 5)}, []int64{3, 2, 2, 2}},
		"ConvTranspose huge strides": {"ConvTranspose",
			[]onnxpb.Attribute{intsAttr("strides", big, big)}, []int64{3, 2, 2, 2}},
		"MaxPool without kernel_shape":    {"MaxPool", nil, nil},
		"MaxPool kernel past the limit":   {"MaxPool", []onnxpb.Attribute{intsAttr("kernel_shape", big+1, 1)}, nil},
		"MaxPool kernel over the input":   {"MaxPool", []onnxpb.Attribute{intsAttr("kernel_shape", 6, 6)}, nil},
		"MaxPool storage_order 2":         {"MaxPool", []onnxpb.Attribute{intsAttr("kernel_shape", 2, 2), intAttr("storage_order", 2)}, nil},
		"MaxPool ceil_mode with auto_pad": {"MaxPool", []onnxpb.Attribute{intsAttr("kernel_shape", 2, 2), intAttr("ceil_mode", 1), stringAttr("auto_pad", "VALID")}, nil},
		"AveragePool huge pads":           {"AveragePool", []onnxpb.Attribute{intsAttr("kernel_shape", 2, 2), intsAttr("pads", big, big, big, big)}, nil},
		"LpPool p zero":                   {"LpPool", []onnxpb.Attribute{intsAttr("kernel_shape", 2, 2), intAttr("p", 0)}, nil},
		"MaxUnpool without indices":       {"MaxUnpool", []onnxpb.Attribute{intsAttr("kernel_shape", 2, 2)}, nil},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			spec := graphSpec{
				nodes:   []onnxpb.Node{node(tc.op, []string{"x", "w"}, []string{"y"}, tc.attrs...)},
				inputs:  []onnxpb.ValueInfo{tensorInfo("x", -1, 3, 5, 5)},
				outputs: []onnxpb.ValueInfo{{Name: "y", ElemType: onnxpb.TypeFloat}},
			}
			if tc.w != nil {
				n := int64(1)
				for _, d := range tc.w {
					n *= d
				}
				spec.inits = []onnxpb.Tensor{floatInit("w", tc.w, make([]float32, n))}
			} else {
				spec.nodes[0].Inputs = spec.nodes[0].Inputs[:1]
			}
			if errs := loadOrRun(t, spec.modelBytes(), []int{1, 3, 5, 5}); errs == nil {
				t.Errorf("%s ran with hostile attributes", tc.op)
			}
		})
	}
}

// loadOrRun loads a model and runs it on zeros of the given shape (every input), with panics
// reaching the test; it returns the load or run error (load errors must wrap ErrUnsupported or
// ErrInvalidModel).
func loadOrRun(t *testing.T, data []byte, shape []int) error {
	t.Helper()
	recoverPanics = false
	defer func() { recoverPanics = true }()
	m, err := Load(data)
	if err != nil {
		if !errors.Is(err, ErrUnsupported) && !errors.Is(err, ErrInvalidModel) {
			t.Errorf("load error %v wraps neither ErrUnsupported nor ErrInvalidModel", err)
		}
		return err
	}
	ins := make([]*Tensor, len(m.Metadata().Inputs))
	for i := range ins {
		ins[i] = NewTensor(shape, make([]float32, product(shape)))
	}
	out := make([]*Tensor, len(m.Metadata().Outputs))
	for i := range out {
		out[i] = &Tensor{}
	}
	return m.Eval(ins, out)
}

// TestPoolHugeKernelOverSmallInput: a kernel of 2²⁴ × 2²⁴ positions over a 5×5 input, padded so
// that the output is small, runs over the 25 positions inside the input, not the kernel's 2⁴⁸.
func TestPoolHugeKernelOverSmallInput(t *testing.T) {
	big := int64(1 << 24)
	for _, op := range []string{"MaxPool", "AveragePool", "LpPool"} {
		spec := graphSpec{
			nodes: []onnxpb.Node{node(op, []string{"x"}, []string{"y"},
				intsAttr("kernel_shape", big, big), intsAttr("pads", big-3, big-3, 0, 0), intsAttr("strides", big, big))},
			inputs:  []onnxpb.ValueInfo{tensorInfo("x", -1, 3, 5, 5)},
			outputs: []onnxpb.ValueInfo{{Name: "y", ElemType: onnxpb.TypeFloat}},
		}
		if err := loadOrRun(t, spec.modelBytes(), []int{1, 3, 5, 5}); err != nil {
			t.Errorf("%s: %v", op, err)
		}
	}
}

// TestResizeHostileArguments: scales and sizes no exporter writes are errors, never a panic or
// an output past the tensor limit.
func TestResizeHostileArguments(t *testing.T) {
	f := func(name string, v ...float32) onnxpb.Tensor { return floatInit(name, []int64{int64(len(v))}, v) }
	nan, inf := float32(math.NaN()), float32(math.Inf(1))
	cases := map[string]struct {
		inputs []string
		inits  []onnxpb.Tensor
		attrs  []onnxpb.Attribute
	}{
		"huge scales":        {[]string{"x", "", "s"}, []onnxpb.Tensor{f("s", 1, 1, 1e9, 1e9)}, nil},
		"NaN scale":          {[]string{"x", "", "s"}, []onnxpb.Tensor{f("s", 1, 1, nan, 1)}, nil},
		"infinite scale":     {[]string{"x", "", "s"}, []onnxpb.Tensor{f("s", 1, 1, inf, 1)}, nil},
		"negative scale":     {[]string{"x", "", "s"}, []onnxpb.Tensor{f("s", 1, 1, -2, 1)}, nil},
		"scales short":       {[]string{"x", "", "s"}, []onnxpb.Tensor{f("s", 2)}, nil},
		"negative sizes":     {[]string{"x", "", "", "z"}, []onnxpb.Tensor{int64Init("z", 1, 3, -4, 4)}, nil},
		"huge sizes":         {[]string{"x", "", "", "z"}, []onnxpb.Tensor{int64Init("z", 1, 3, 1<<40, 4)}, nil},
		"sizes and scales":   {[]string{"x", "", "s", "z"}, []onnxpb.Tensor{f("s", 1, 1, 2, 2), int64Init("z", 1, 3, 4, 4)}, nil},
		"neither":            {[]string{"x"}, nil, nil},
		"crop without a roi": {[]string{"x", "", "s"}, []onnxpb.Tensor{f("s", 1, 1, 2, 2)}, []onnxpb.Attribute{stringAttr("coordinate_transformation_mode", "tf_crop_and_resize")}},
		"unknown transform":  {[]string{"x", "", "s"}, []onnxpb.Tensor{f("s", 1, 1, 2, 2)}, []onnxpb.Attribute{stringAttr("coordinate_transformation_mode", "?")}},
		"antialias":          {[]string{"x", "", "s"}, []onnxpb.Tensor{f("s", 1, 1, 2, 2)}, []onnxpb.Attribute{intAttr("antialias", 1)}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			spec := graphSpec{
				nodes:   []onnxpb.Node{node("Resize", tc.inputs, []string{"y"}, tc.attrs...)},
				inits:   tc.inits,
				inputs:  []onnxpb.ValueInfo{tensorInfo("x", -1, 3, 5, 5)},
				outputs: []onnxpb.ValueInfo{{Name: "y", ElemType: onnxpb.TypeFloat}},
				opset:   18,
			}
			if err := loadOrRun(t, spec.modelBytes(), []int{1, 3, 5, 5}); err == nil {
				t.Error("Resize ran with hostile arguments")
			}
		})
	}
}

// TestMaxUnpoolRestoresMaxPoolInput: MaxPool's indices over a 5×5 input, unpooled with
// output_shape 5×5, put every window's maximum back where it was and zeros elsewhere (the
// expected plane is built here from the input, window by window).
func TestMaxUnpoolRestoresMaxPoolInput(t *testing.T) {
	spec := graphSpec{
		nodes: []onnxpb.Node{
			node("MaxPool", []string{"x"}, []string{"p", "i"}, intsAttr("kernel_shape", 2, 2), intsAttr("strides", 2, 2)),
			node("MaxUnpool", []string{"p", "i", "s"}, []string{"y"}, intsAttr("kernel_shape", 2, 2), intsAttr("strides", 2, 2)),
		},
		inits:   []onnxpb.Tensor{int64Init("s", 1, 1, 5, 5)},
		inputs:  []onnxpb.ValueInfo{tensorInfo("x", 1, 1, 5, 5)},
		outputs: []onnxpb.ValueInfo{{Name: "y", ElemType: onnxpb.TypeFloat}},
		opset:   12,
	}
	m, err := Load(spec.modelBytes())
	if err != nil {
		t.Fatal(err)
	}
	x := make([]float32, 25)
	for i := range x {
		x[i] = float32((i * 7) % 11)
	}
	want := make([]float32, 25)
	for wr := 0; wr < 4; wr += 2 {
		for wc := 0; wc < 4; wc += 2 {
			best := wr*5 + wc
			for _, at := range []int{wr*5 + wc, wr*5 + wc + 1, (wr+1)*5 + wc, (wr+1)*5 + wc + 1} {
				if x[at] > x[best] {
					best = at
				}
			}
			want[best] = x[best]
		}
	}
	y := &Tensor{}
	if err := m.Eval([]*Tensor{NewTensor([]int{1, 1, 5, 5}, x)}, []*Tensor{y}); err != nil {
		t.Fatal(err)
	}
	if d := diffFloats(want, y.Float32, 0); d != "" {
		t.Errorf("unpooled plane: %s", d)
	}
}

// FuzzWindowOps gives the windowed operators drawn input shapes, weight shapes and window
// attributes — plausible and hostile values alike, lists of the right and wrong lengths — and
// checks that each model is refused cleanly or runs (or refuses its input) without a panic.
// FuzzGraph rarely builds these: its inputs have no spatial axes.
func FuzzWindowOps(f *testing.F) {
	for _, seed := range [][]byte{
		{0, 1, 2, 2, 2, 0, 1, 1, 1, 3, 3},
		{1, 0, 1, 1, 3, 4, 4, 4, 5, 6, 7, 8, 9},
		{2, 2, 3, 4, 5, 9, 9, 9, 9, 9, 9, 9, 9, 9},
		{5, 1, 0, 0, 0, 250, 251, 252, 253, 254, 255},
		[]byte("pads strides dilations kernel_shape output_shape"),
	} {
		f.Add(seed)
	}
	ops := []string{"Conv", "ConvTranspose", "MaxPool", "AveragePool", "LpPool", "GlobalMaxPool", "GlobalAveragePool",
		"GlobalLpPool", "MaxUnpool", "LRN", "InstanceNormalization", "Resize"}
	dims := []int64{1, 2, 3, 5, 7, 0}
	vals := []int64{0, 1, 2, 3, -1, 7, 1 << 24, 1 << 40, math.MaxInt64, math.MinInt64, 4, 1}
	attrs := []string{"kernel_shape", "strides", "dilations", "pads", "output_padding", "output_shape"}
	f.Fuzz(func(t *testing.T, spec []byte) {
		g := &graphGen{b: spec}
		op := ops[g.pick(len(ops))]
		rank := 3 + g.pick(3)
		shape := make([]int64, rank)
		run := make([]int, rank)
		for i := range shape {
			shape[i] = dims[g.pick(len(dims))]
			run[i] = int(shape[i])
		}
		n := node(op, []string{"x"}, []string{"y"})
		var inits []onnxpb.Tensor
		switch op {
		case "Conv", "ConvTranspose":
			w := make([]int64, rank)
			count := int64(1)
			for i := range w {
				w[i] = dims[g.pick(len(dims))]
				if i == 1 && g.pick(2) == 0 {
					w[i] = shape[1]
				}
				count *= w[i]
			}
			inits = append(inits, floatInit("w", w, make([]float32, count)))
			n.Inputs = append(n.Inputs, "w")
		case "MaxUnpool":
			inits = append(inits, onnxpb.Tensor{Name: "i", Dims: shape, DataType: onnxpb.TypeInt64, Int64Data: make([]int64, product(run))})
			n.Inputs = append(n.Inputs, "i")
		case "InstanceNormalization":
			c := []int64{shape[1]}
			inits = append(inits, floatInit("s", c, make([]float32, c[0])), floatInit("b", c, make([]float32, c[0])))
			n.Inputs = append(n.Inputs, "s", "b")
		case "Resize":
			sc := make([]float32, rank)
			for i := range sc {
				sc[i] = []float32{1, 2, 0.5, 0, -1, 3e9}[g.pick(6)]
			}
			inits = append(inits, floatInit("s", []int64{int64(rank)}, sc))
			n.Inputs = append(n.Inputs, "", "s")
		}
		for range g.pick(5) {
			a := intsAttr(attrs[g.pick(len(attrs))])
			for range g.pick(2 * rank) {
				a.Ints = append(a.Ints, vals[g.pick(len(vals))])
			}
			n.Attributes = append(n.Attributes, a)
		}
		for _, name := range []string{"group", "ceil_mode", "count_include_pad", "storage_order", "p", "size"} {
			if g.pick(4) == 0 {
				n.Attributes = append(n.Attributes, intAttr(name, vals[g.pick(len(vals))]))
			}
		}
		if g.pick(3) == 0 {
			n.Attributes = append(n.Attributes, stringAttr("auto_pad", []string{"SAME_UPPER", "SAME_LOWER", "VALID", "NOTSET", "x"}[g.pick(5)]))
		}
		m := graphSpec{nodes: []onnxpb.Node{n}, inits: inits, inputs: []onnxpb.ValueInfo{tensorInfo("x", shape...)},
			outputs: []onnxpb.ValueInfo{{Name: "y", ElemType: onnxpb.TypeFloat}}, opset: 13}
		_ = loadOrRun(t, m.modelBytes(), run) // errors are fine; panics fail the test
	})
}
