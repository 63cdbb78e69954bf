package model

import (
	"fmt"
	"math/rand/v2"
	"syscall"
	"testing"
	"time"

	"github.com/freightcast/freightcast/internal/onnxpb"
)

// benchBatches are the batch sizes of docs/benchmarks.md.
var benchBatches = []int{1, 64, 1024}

// cpuTime is the CPU time the process has used (all threads). The benchmarks report it per
// operation as cpu-ns/op beside Go's wall-clock ns/op: on a machine shared with other builds,
// wall time includes the time the benchmark waited for a core, CPU time does not, so ratios
// against the anchor hold better in CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchLoop runs op b.N times and reports rows/s and CPU ns per op.
func benchLoop(b *testing.B, rows int, op func() error) {
	b.ReportAllocs()
	start := cpuTime()
	for b.Loop() {
		if err := op(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64((cpuTime()-start).Nanoseconds())/float64(b.N), "cpu-ns/op")
	b.ReportMetric(float64(rows*b.N)/b.Elapsed().Seconds(), "rows/s")
}

// BenchmarkFreight runs the committed freight model on one goroutine, the figure docs/benchmarks.md
// compares with onnxruntime on one thread (see ort_bench_test.go).
func BenchmarkFreight(b *testing.B) {
	m, _ := loadFreight(b)
	for _, rows := range benchBatches {
		b.Run(fmt.Sprintf("batch=%d", rows), func(b *testing.B) {
			in := [][]float32{freightRows(rand.New(rand.NewPCG(1, 2)), rows)}
			out := [][]float32{make([]float32, rows)}
			benchLoop(b, rows, func() error { return m.Run(rows, in, out) })
		})
	}
}

// torchBenchModels are the PyTorch tabular net's two exports.
var torchBenchModels = []string{"torch_tabular_opset13", "torch_tabular_opset17"}

// torchBenchInputs tiles the fixture's rows into a batch of the given size.
func torchBenchInputs(fixture []*Tensor, rows int) []*Tensor {
	have := fixture[0].Shape[0]
	numeric, mode := make([]float32, rows*8), make([]int64, rows)
	for r := range rows {
		copy(numeric[r*8:(r+1)*8], fixture[0].Float32[(r%have)*8:])
		mode[r] = fixture[1].Int64[r%have]
	}
	return []*Tensor{NewTensor([]int{rows, 8}, numeric), NewTensor([]int{rows}, mode)}
}

// BenchmarkTorchTabular runs the PyTorch tabular net (both exports) through Eval, typed inputs
// and a kept output tensor, as the OIP server will.
func BenchmarkTorchTabular(b *testing.B) {
	for _, name := range torchBenchModels {
		m, fixture, _, _ := readOIPFixture(b, name)
		for _, rows := range benchBatches {
			b.Run(fmt.Sprintf("%s/batch=%d", name, rows), func(b *testing.B) {
				in, out := torchBenchInputs(fixture, rows), []*Tensor{{}}
				benchLoop(b, rows, func() error { return m.Eval(in, out) })
			})
		}
	}
}

// shapeHeavyModel is a model made of what issue 17 adds weight to — Gather, Transpose,
// LayerNormalization and the Shape→Reshape chain — around little arithmetic: six categorical
// columns embedded (Gather), mixed across columns (Transpose, MatMul, Transpose), normalised
// (LayerNormalization), flattened by a dynamic-shape chain (Shape, Gather, Unsqueeze, Concat,
// Reshape), joined with eight numeric features and scored by two dense layers. Weights are
// seeded random; answers are checked against onnxruntime in the ortbench anchor.
func shapeHeavyModel() []byte {
	rng := rand.New(rand.NewPCG(17, 12))
	f := func(name string, dims ...int64) onnxpb.Tensor { return randomInit(rng, name, dims...) }
	g := graphSpec{
		opset: 17,
		nodes: []onnxpb.Node{
			node("Gather", []string{"table", "ids"}, []string{"emb"}),
			node("Transpose", []string{"emb"}, []string{"cols"}, onnxpb.Attribute{Name: "perm", Type: onnxpb.AttrInts, Ints: []int64{0, 2, 1}}),
			node("MatMul", []string{"cols", "mix"}, []string{"mixed"}),
			node("Transpose", []string{"mixed"}, []string{"back"}, onnxpb.Attribute{Name: "perm", Type: onnxpb.AttrInts, Ints: []int64{0, 2, 1}}),
			node("LayerNormalization", []string{"back", "scale", "bias"}, []string{"norm"}, intAttr("axis", -1)),
			node("Shape", []string{"norm"}, []string{"shape"}),
			node("Gather", []string{"shape", "zero"}, []string{"n"}, intAttr("axis", 0)),
			node("Unsqueeze", []string{"n", "axes0"}, []string{"n1"}),
			node("Concat", []string{"n1", "minus_one"}, []string{"target"}, intAttr("axis", 0)),
			node("Reshape", []string{"norm", "target"}, []string{"flat"}),
			node("Concat", []string{"flat", "numeric"}, []string{"joined"}, intAttr("axis", 1)),
			node("Gemm", []string{"joined", "w1", "b1"}, []string{"h"}),
			node("Relu", []string{"h"}, []string{"r"}),
			node("Gemm", []string{"r", "w2", "b2"}, []string{"logit"}),
			node("Sigmoid", []string{"logit"}, []string{"risk"}),
		},
		inits: []onnxpb.Tensor{
			f("table", 32, 16), f("mix", 6, 6), f("scale", 16), f("bias", 16),
			{Name: "zero", DataType: onnxpb.TypeInt64, Int64Data: []int64{0}},
			int64Init("axes0", 0), int64Init("minus_one", -1),
			f("w1", 104, 32), f("b1", 32), f("w2", 32, 1), f("b2", 1),
		},
		inputs:  []onnxpb.ValueInfo{typedInfo("ids", onnxpb.TypeInt64, -1, 6), tensorInfo("numeric", -1, 8)},
		outputs: []onnxpb.ValueInfo{tensorInfo("risk", -1, 1)},
	}
	return g.modelBytes()
}

func shapeHeavyInputs(rows int) []*Tensor {
	rng := rand.New(rand.NewPCG(uint64(rows), 5))
	ids, numeric := make([]int64, rows*6), make([]float32, rows*8)
	for i := range ids {
		ids[i] = int64(rng.IntN(32))
	}
	for i := range numeric {
		numeric[i] = rng.Float32()*2 - 1
	}
	return []*Tensor{NewTensor([]int{rows, 6}, ids), NewTensor([]int{rows, 8}, numeric)}
}

// BenchmarkShapeHeavy runs shapeHeavyModel through Eval.
func BenchmarkShapeHeavy(b *testing.B) {
	m, err := Load(shapeHeavyModel())
	if err != nil {
		b.Fatal(err)
	}
	for _, rows := range benchBatches {
		b.Run(fmt.Sprintf("batch=%d", rows), func(b *testing.B) {
			in, out := shapeHeavyInputs(rows), []*Tensor{{}}
			benchLoop(b, rows, func() error { return m.Eval(in, out) })
		})
	}
}
