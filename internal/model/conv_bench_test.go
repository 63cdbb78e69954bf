package model

import (
	"math/rand/v2"
	"testing"

	"github.com/freightcast/freightcast/internal/onnxpb"
)

// convBenchLayers are convolutions as image networks have them: a ResNet stage's 3×3 layer,
// a bottleneck's 1×1 projection and a stem's strided 3×3 over an RGB image. Each is one Conv
// with constant weights and bias, one image.
var convBenchLayers = []struct {
	name                    string
	in, out, size, k, strid int
}{
	{"3x3_64to64_56px", 64, 64, 56, 3, 1},
	{"1x1_256to64_56px", 256, 64, 56, 1, 1},
	{"3x3s2_3to32_224px", 3, 32, 224, 3, 2},
}

func convBenchModel(in, out, size, k, stride int) []byte {
	rng := rand.New(rand.NewPCG(7, 8))
	pad := int64(k / 2)
	return graphSpec{
		nodes: []onnxpb.Node{node("Conv", []string{"x", "w", "b"}, []string{"y"},
			intsAttr("kernel_shape", int64(k), int64(k)), intsAttr("strides", int64(stride), int64(stride)),
			intsAttr("pads", pad, pad, pad, pad))},
		inits:   []onnxpb.Tensor{randomInit(rng, "w", int64(out), int64(in), int64(k), int64(k)), randomInit(rng, "b", int64(out))},
		inputs:  []onnxpb.ValueInfo{tensorInfo("x", 1, int64(in), int64(size), int64(size))},
		outputs: []onnxpb.ValueInfo{{Name: "y", ElemType: onnxpb.TypeFloat}},
	}.modelBytes()
}

func convBenchInput(in, size int) *Tensor {
	return NewTensor([]int{1, in, size, size}, randomFloats(rand.New(rand.NewPCG(9, 10)), in*size*size))
}

// BenchmarkConv runs each layer through Eval on one goroutine; docs/benchmarks.md compares it
// with onnxruntime on one thread (BenchmarkORTConv).
func BenchmarkConv(b *testing.B) {
	for _, l := range convBenchLayers {
		b.Run(l.name, func(b *testing.B) {
			m, err := Load(convBenchModel(l.in, l.out, l.size, l.k, l.strid))
			if err != nil {
				b.Fatal(err)
			}
			in, out := []*Tensor{convBenchInput(l.in, l.size)}, []*Tensor{{}}
			benchLoop(b, 1, func() error { return m.Eval(in, out) })
		})
	}
}
