package model

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/freightcast/freightcast/internal/onnxpb"
)

type opCase struct {
	spec graphSpec
	// shapes are the concrete input shapes; axis 0 is the batch.
	shapes [][]int
	// ref, when set, is the model gorgonnx runs instead: the same computation written with the
	// concrete batch where gorgonnx cannot handle a variable one.
	ref *graphSpec
	// direct, when set, replaces gorgonnx as the reference for a case gorgonnx gets wrong.
	direct func(inputs [][]float32) []float32
}

func opCases() map[string]opCase {
	rng := rand.New(rand.NewPCG(1, 2))
	x := func(dims ...int64) []onnxpb.ValueInfo { return []onnxpb.ValueInfo{tensorInfo("x", dims...)} }
	y := func(dims ...int64) []onnxpb.ValueInfo { return []onnxpb.ValueInfo{tensorInfo("y", dims...)} }
	unary := func(op string, attrs ...onnxpb.Attribute) opCase {
		return opCase{
			spec:   graphSpec{nodes: []onnxpb.Node{node(op, []string{"x"}, []string{"y"}, attrs...)}, inputs: x(-1, 6), outputs: y(-1, 6)},
			shapes: [][]int{{5, 6}},
		}
	}
	return map[string]opCase{
		"Gemm with bias": {
			spec: graphSpec{
				nodes:   []onnxpb.Node{node("Gemm", []string{"x", "w", "b"}, []string{"y"})},
				inits:   []onnxpb.Tensor{randomInit(rng, "w", 5, 7), randomInit(rng, "b", 7)},
				inputs:  x(-1, 5),
				outputs: y(-1, 7),
			},
			shapes: [][]int{{9, 5}},
		},
		"Gemm transB alpha beta": {
			spec: graphSpec{
				nodes: []onnxpb.Node{node("Gemm", []string{"x", "w", "b"}, []string{"y"},
					intAttr("transB", 1), floatAttr("alpha", 0.5), floatAttr("beta", 2))},
				inits:   []onnxpb.Tensor{randomInit(rng, "w", 3, 4), randomInit(rng, "b", 1, 3)},
				inputs:  x(-1, 4),
				outputs: y(-1, 3),
			},
			shapes: [][]int{{4, 4}},
		},
		"MatMul": {
			spec: graphSpec{
				nodes:   []onnxpb.Node{node("MatMul", []string{"x", "w"}, []string{"y"})},
				inits:   []onnxpb.Tensor{randomInit(rng, "w", 5, 3)},
				inputs:  x(-1, 5),
				outputs: y(-1, 3),
			},
			shapes: [][]int{{7, 5}},
		},
		"Add row bias": {
			spec: graphSpec{
				nodes:   []onnxpb.Node{node("Add", []string{"x", "b"}, []string{"y"})},
				inits:   []onnxpb.Tensor{randomInit(rng, "b", 4)},
				inputs:  x(-1, 4),
				outputs: y(-1, 4),
			},
			shapes: [][]int{{3, 4}},
		},
		"Sub two inputs": {
			spec: graphSpec{
				nodes:   []onnxpb.Node{node("Sub", []string{"x", "z"}, []string{"y"})},
				inputs:  []onnxpb.ValueInfo{tensorInfo("x", -1, 4), tensorInfo("z", -1, 4)},
				outputs: y(-1, 4),
			},
			shapes: [][]int{{3, 4}, {3, 4}},
		},
		"Mul same shape constant": {
			spec: graphSpec{
				nodes:   []onnxpb.Node{node("Mul", []string{"x", "c"}, []string{"y"})},
				inits:   []onnxpb.Tensor{randomInit(rng, "c", 1, 4)},
				inputs:  x(-1, 4),
				outputs: y(-1, 4),
			},
			shapes: [][]int{{6, 4}},
		},
		"Div by constant": {
			spec: graphSpec{
				nodes:   []onnxpb.Node{node("Div", []string{"x", "c"}, []string{"y"})},
				inits:   []onnxpb.Tensor{floatInit("c", []int64{4}, []float32{2, -4, 0.5, 8})},
				inputs:  x(-1, 4),
				outputs: y(-1, 4),
			},
			shapes: [][]int{{2, 4}},
		},
		"Abs":      unary("Abs"),
		"Neg":      unary("Neg"),
		"Exp":      unary("Exp"),
		"Ceil":     unary("Ceil"),
		"Floor":    unary("Floor"),
		"Sin":      unary("Sin"),
		"Cos":      unary("Cos"),
		"Sign":     unary("Sign"),
		"Softplus": unary("Softplus"),
		"Sqrt and Log of Abs": {
			spec: graphSpec{nodes: []onnxpb.Node{
				node("Abs", []string{"x"}, []string{"a"}),
				node("Sqrt", []string{"a"}, []string{"s"}),
				node("Exp", []string{"s"}, []string{"e"}),
				node("Log", []string{"e"}, []string{"y"}),
			}, inputs: x(-1, 6), outputs: y(-1, 6)},
			shapes: [][]int{{5, 6}},
		},
		"Max and Min": {
			spec: graphSpec{nodes: []onnxpb.Node{
				node("Max", []string{"x", "z"}, []string{"m"}),
				node("Min", []string{"m", "c"}, []string{"y"}),
			}, inits: []onnxpb.Tensor{randomInit(rng, "c", 4)},
				inputs: []onnxpb.ValueInfo{tensorInfo("x", -1, 4), tensorInfo("z", -1, 4)}, outputs: y(-1, 4)},
			shapes: [][]int{{3, 4}, {3, 4}},
		},
		"Transpose": {
			spec: graphSpec{nodes: []onnxpb.Node{node("Transpose", []string{"x"}, []string{"y"},
				onnxpb.Attribute{Name: "perm", Type: onnxpb.AttrInts, Ints: []int64{0, 2, 1}})},
				inputs: x(-1, 2, 3), outputs: y(-1, 3, 2)},
			shapes: [][]int{{4, 2, 3}},
		},
		"Squeeze opset 11": {
			spec: graphSpec{nodes: []onnxpb.Node{
				node("Squeeze", []string{"x"}, []string{"y"}, onnxpb.Attribute{Name: "axes", Type: onnxpb.AttrInts, Ints: []int64{2}}),
			}, inputs: x(-1, 5, 1), outputs: y(-1, 5), opset: 11},
			shapes: [][]int{{3, 5, 1}},
		},
		"Unsqueeze opset 11": {
			spec: graphSpec{nodes: []onnxpb.Node{
				node("Unsqueeze", []string{"x"}, []string{"y"}, onnxpb.Attribute{Name: "axes", Type: onnxpb.AttrInts, Ints: []int64{2}}),
			}, inputs: x(-1, 5), outputs: y(-1, 5, 1), opset: 11},
			shapes: [][]int{{3, 5}},
		},
		"Relu":      unary("Relu"),
		"LeakyRelu": unary("LeakyRelu", floatAttr("alpha", 0.2)),
		"Sigmoid":   unary("Sigmoid"),
		"Tanh":      unary("Tanh"),
		"Identity":  unary("Identity"),
		"Softmax":   unary("Softmax", intAttr("axis", 1)),
		"Softmax rank 3 last axis": {
			spec: graphSpec{
				nodes:   []onnxpb.Node{node("Softmax", []string{"x"}, []string{"y"}, intAttr("axis", -1))},
				inputs:  x(-1, 3, 4),
				outputs: y(-1, 3, 4),
			},
			shapes: [][]int{{2, 3, 4}},
			// gorgonnx normalises the whole tensor, batch included, whatever the axis.
			direct: func(in [][]float32) []float32 {
				out := make([]float32, len(in[0]))
				for start := 0; start < len(out); start += 4 {
					var sum float64
					for _, v := range in[0][start : start+4] {
						sum += math.Exp(float64(v))
					}
					for i, v := range in[0][start : start+4] {
						out[start+i] = float32(math.Exp(float64(v)) / sum)
					}
				}
				return out
			},
		},
		"Softmax opset 11 flattens from the axis": {
			spec: graphSpec{
				nodes:   []onnxpb.Node{node("Softmax", []string{"x"}, []string{"y"}, intAttr("axis", 1))},
				inputs:  x(-1, 3, 4),
				outputs: y(-1, 3, 4),
				opset:   11,
			},
			shapes: [][]int{{2, 3, 4}},
		},
		"Concat rank 3 inner axis": {
			spec: graphSpec{
				nodes:   []onnxpb.Node{node("Concat", []string{"x", "z"}, []string{"y"}, intAttr("axis", 2))},
				inputs:  []onnxpb.ValueInfo{tensorInfo("x", -1, 2, 3), tensorInfo("z", -1, 2, 1)},
				outputs: y(-1, 2, 4),
			},
			shapes: [][]int{{3, 2, 3}, {3, 2, 1}},
		},
		"Add of a folded constant": {
			spec: graphSpec{
				nodes: []onnxpb.Node{
					node("Mul", []string{"c1", "c2"}, []string{"c"}),
					node("Add", []string{"x", "c"}, []string{"y"}),
				},
				inits:   []onnxpb.Tensor{randomInit(rng, "c1", 4), randomInit(rng, "c2", 4)},
				inputs:  x(-1, 4),
				outputs: y(-1, 4),
			},
			shapes: [][]int{{3, 4}},
		},
		"Flatten": {
			spec: graphSpec{
				nodes:   []onnxpb.Node{node("Flatten", []string{"x"}, []string{"y"}, intAttr("axis", 1))},
				inputs:  x(-1, 2, 3),
				outputs: y(-1, 6),
			},
			shapes: [][]int{{4, 2, 3}},
		},
		"Reshape": {
			spec: graphSpec{
				nodes:   []onnxpb.Node{node("Reshape", []string{"x", "s"}, []string{"y"})},
				inits:   []onnxpb.Tensor{int64Init("s", -1, 3, 2)},
				inputs:  x(-1, 6),
				outputs: y(-1, 3, 2),
			},
			shapes: [][]int{{4, 6}},
			ref: &graphSpec{
				nodes:   []onnxpb.Node{node("Reshape", []string{"x", "s"}, []string{"y"})},
				inits:   []onnxpb.Tensor{int64Init("s", 4, 3, 2)},
				inputs:  x(4, 6),
				outputs: y(4, 3, 2),
			},
		},
		"Reshape keeping the batch and inferring the row": {
			spec: graphSpec{
				nodes:   []onnxpb.Node{node("Reshape", []string{"x", "s"}, []string{"y"})},
				inits:   []onnxpb.Tensor{int64Init("s", 0, -1)},
				inputs:  x(-1, 2, 3),
				outputs: y(-1, 6),
			},
			shapes: [][]int{{4, 2, 3}},
			// gorgonnx needs the concrete target shape.
			ref: &graphSpec{
				nodes:   []onnxpb.Node{node("Reshape", []string{"x", "s"}, []string{"y"})},
				inits:   []onnxpb.Tensor{int64Init("s", 4, 6)},
				inputs:  x(4, 2, 3),
				outputs: y(4, 6),
			},
		},
		"Concat": {
			spec: graphSpec{
				nodes:   []onnxpb.Node{node("Concat", []string{"x", "z"}, []string{"y"}, intAttr("axis", 1))},
				inputs:  []onnxpb.ValueInfo{tensorInfo("x", -1, 2), tensorInfo("z", -1, 3)},
				outputs: y(-1, 5),
			},
			shapes: [][]int{{4, 2}, {4, 3}},
		},
		"BatchNormalization": {
			spec: graphSpec{
				nodes: []onnxpb.Node{node("BatchNormalization", []string{"x", "s", "b", "m", "v"}, []string{"y"}, floatAttr("epsilon", 1e-3))},
				inits: []onnxpb.Tensor{randomInit(rng, "s", 3), randomInit(rng, "b", 3), randomInit(rng, "m", 3),
					floatInit("v", []int64{3}, []float32{0.5, 1, 2})},
				inputs:  x(-1, 3, 2, 2),
				outputs: y(-1, 3, 2, 2),
			},
			shapes: [][]int{{2, 3, 2, 2}},
		},
		"MLP, batch past one chunk and not a multiple of four": func() opCase {
			w1, w2 := randomInit(rng, "w1", 5, 48), randomInit(rng, "w2", 16, 48)
			nodes := func(gemmInputs ...string) []onnxpb.Node {
				return []onnxpb.Node{
					node("MatMul", []string{"x", "w1"}, []string{"h"}),
					node("LeakyRelu", []string{"h"}, []string{"r"}, floatAttr("alpha", 0.1)),
					node("Gemm", gemmInputs, []string{"y"}, intAttr("transB", 1)),
				}
			}
			return opCase{
				spec:   graphSpec{nodes: nodes("r", "w2"), inits: []onnxpb.Tensor{w1, w2}, inputs: x(-1, 5), outputs: y(-1, 16)},
				shapes: [][]int{{ChunkRows + 7, 5}},
				// gorgonnx insists on Gemm's optional C.
				ref: &graphSpec{nodes: nodes("r", "w2", "zero"), inits: []onnxpb.Tensor{w1, w2, floatInit("zero", []int64{16}, make([]float32, 16))},
					inputs: x(-1, 5), outputs: y(-1, 16)},
			}
		}(),
		"Mul broadcast column": func() opCase {
			c := randomInit(rng, "c", 3, 1)
			tiled := make([]float32, 0, 24)
			for range 2 {
				for i := range 3 {
					for range 4 {
						tiled = append(tiled, c.FloatData[i])
					}
				}
			}
			return opCase{
				spec: graphSpec{nodes: []onnxpb.Node{node("Mul", []string{"x", "c"}, []string{"y"})},
					inits: []onnxpb.Tensor{c}, inputs: x(-1, 3, 4), outputs: y(-1, 3, 4)},
				shapes: [][]int{{2, 3, 4}},
				// gorgonnx cannot broadcast (2,3,4) with (3,1): its model gets the constant tiled.
				ref: &graphSpec{nodes: []onnxpb.Node{node("Mul", []string{"x", "c"}, []string{"y"})},
					inits: []onnxpb.Tensor{floatInit("c", []int64{2, 3, 4}, tiled)}, inputs: x(2, 3, 4), outputs: y(2, 3, 4)},
			}
		}(),
		"MLP": {
			spec: graphSpec{
				nodes: []onnxpb.Node{
					node("Gemm", []string{"x", "w1", "b1"}, []string{"h"}),
					node("Relu", []string{"h"}, []string{"r"}),
					node("Gemm", []string{"r", "w2", "b2"}, []string{"l"}),
					node("Sigmoid", []string{"l"}, []string{"y"}),
				},
				inits:   []onnxpb.Tensor{randomInit(rng, "w1", 12, 32), randomInit(rng, "b1", 32), randomInit(rng, "w2", 32, 1), randomInit(rng, "b2", 1)},
				inputs:  x(-1, 12),
				outputs: y(-1, 1),
			},
			shapes: [][]int{{7, 12}},
		},
	}
}

// TestOpsAgreeWithGorgonnx runs every supported operator through this backend and through
// onnx-go's gorgonia backend, on the same ONNX bytes and inputs (or, where gorgonnx lacks a
// feature or gets it wrong, an equivalent model or a direct computation, as each case says).
func TestOpsAgreeWithGorgonnx(t *testing.T) {
	forEachKernel(t, testOpsAgreeWithGorgonnx)
}

// forEachKernel runs a test with the Go dense kernels and, where the CPU has them, the assembly
// ones (the choice is made when a model is loaded).
func forEachKernel(t *testing.T, test func(t *testing.T)) {
	saved := useAVX2
	t.Cleanup(func() { useAVX2 = saved })
	useAVX2 = false
	t.Run("go", test)
	if saved {
		useAVX2 = true
		t.Run("avx2", test)
	}
}

func testOpsAgreeWithGorgonnx(t *testing.T) {
	for name, tc := range opCases() {
		t.Run(name, func(t *testing.T) {
			data := tc.spec.modelBytes()
			rng := rand.New(rand.NewPCG(3, 4))
			inputs := make([][]float32, len(tc.shapes))
			for i, s := range tc.shapes {
				inputs[i] = randomFloats(rng, product(s))
			}
			ref := data
			if tc.ref != nil {
				ref = tc.ref.modelBytes()
			}
			var want [][]float32
			if tc.direct != nil {
				want = [][]float32{tc.direct(inputs)}
			} else {
				want = runGorgonnx(t, ref, tc.shapes, inputs)
			}
			got := runOurs(t, data, tc.shapes[0][0], inputs)
			if len(want) != len(got) {
				t.Fatalf("outputs: gorgonnx %d, ours %d", len(want), len(got))
			}
			for i := range want {
				if d := diffFloats(want[i], got[i], 1e-5); d != "" {
					t.Errorf("output %d: %s", i, d)
				}
			}
		})
	}
}

// TestExp32 compares the float32 exp with math.Exp over the range sigmoid and softmax use.
func TestExp32(t *testing.T) {
	worst := 0.0
	for x := -87.0; x <= 88.0; x += 0.001 {
		want := math.Exp(float64(float32(x)))
		got := float64(exp32(float32(x)))
		if rel := math.Abs(got-want) / want; rel > worst {
			worst = rel
		}
	}
	if worst > 5e-7 {
		t.Errorf("worst relative error %g, want at most 5e-7", worst)
	}
	cases := map[string]struct {
		x    float32
		want float64
	}{
		"overflow":  {x: 100, want: math.Inf(1)},
		"underflow": {x: -100, want: 0},
		"zero":      {x: 0, want: 1},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if got := float64(exp32(tc.x)); got != tc.want {
				t.Errorf("exp32(%v) = %v, want %v", tc.x, got, tc.want)
			}
		})
	}
	if v := exp32(float32(math.NaN())); v == v {
		t.Errorf("exp32(NaN) = %v, want NaN", v)
	}
}

// TestErf32 compares the float32 erf with math.Erf over the whole float32 range that matters
// (beyond ±4 erf rounds to ±1 in float32).
func TestErf32(t *testing.T) {
	worst := 0.0
	for x := -5.0; x <= 5.0; x += 1e-4 {
		f := float32(x)
		want := math.Erf(float64(f))
		if d := math.Abs(float64(erf32(f)) - want); d > worst {
			worst = d
		}
	}
	// float32 spacing near 1 is 6e-8: the table is within a rounding of the exact value.
	if worst > 1.2e-7 {
		t.Errorf("worst absolute error %g, want at most 1.2e-7", worst)
	}
	for _, x := range []float32{0, float32(math.Inf(1)), float32(math.Inf(-1))} {
		if got, want := erf32(x), float32(math.Erf(float64(x))); got != want {
			t.Errorf("erf32(%v) = %v, want %v", x, got, want)
		}
	}
	if v := erf32(float32(math.NaN())); v == v {
		t.Errorf("erf32(NaN) = %v", v)
	}
}
