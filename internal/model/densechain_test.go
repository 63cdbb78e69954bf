package model

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/freightcast/freightcast/internal/onnxpb"
)

// denseChainModel is a 12→16→20→3 MLP whose layer widths take each dense kernel path (sixteen
// wide, blocks of four, narrow) and whose middle layer is a MatMul without bias.
func denseChainModel() []byte {
	rng := rand.New(rand.NewPCG(21, 3))
	g := graphSpec{
		opset: 13,
		nodes: []onnxpb.Node{
			node("Gemm", []string{"x", "w1", "b1"}, []string{"h1"}),
			node("Relu", []string{"h1"}, []string{"r1"}),
			node("MatMul", []string{"r1", "w2"}, []string{"h2"}),
			node("Tanh", []string{"h2"}, []string{"t2"}),
			node("Gemm", []string{"t2", "w3", "b3"}, []string{"y"}),
		},
		inits: []onnxpb.Tensor{
			randomInit(rng, "w1", 12, 16), randomInit(rng, "b1", 16),
			randomInit(rng, "w2", 16, 20),
			randomInit(rng, "w3", 20, 3), randomInit(rng, "b3", 3),
		},
		inputs:  []onnxpb.ValueInfo{tensorInfo("x", -1, 12)},
		outputs: []onnxpb.ValueInfo{tensorInfo("y", -1, 3)},
	}
	return g.modelBytes()
}

// TestDenseChainMatchesExecutor: Run takes a shortcut for MLPs (plan.chain, the dense layers run
// straight on the caller's slices), which must be taken for them and must answer, to the bit,
// what the general executor answers through Eval — in one chunk and in several.
func TestDenseChainMatchesExecutor(t *testing.T) {
	forEachKernel(t, testDenseChainMatchesExecutor)
}

func testDenseChainMatchesExecutor(t *testing.T) {
	_, freight := loadFreight(t)
	models := map[string]struct {
		data   []byte
		layers int
	}{
		"freight":    {freight, 2},
		"12-16-20-3": {denseChainModel(), 3},
	}
	for name, tc := range models {
		t.Run(name, func(t *testing.T) {
			m, err := Load(tc.data)
			if err != nil {
				t.Fatal(err)
			}
			if got := len(m.plan.chain); got != tc.layers {
				t.Fatalf("plan runs as a chain of %d dense layers, want %d", got, tc.layers)
			}
			k, n := m.inSize[0], m.outSize[0]
			for _, rows := range []int{1, 7, 1024, 2*ChunkRows + 3} {
				rng := rand.New(rand.NewPCG(uint64(rows), 8))
				in := randomFloats(rng, rows*k)
				got := make([]float32, rows*n)
				if err := m.Run(rows, [][]float32{in}, [][]float32{got}); err != nil {
					t.Fatal(err)
				}
				want := []*Tensor{{}}
				if err := m.Eval([]*Tensor{NewTensor([]int{rows, k}, in)}, want); err != nil {
					t.Fatal(err)
				}
				if d := diffFloats(want[0].Float32, got, 0); d != "" {
					t.Errorf("batch %d: Run and Eval disagree: %s", rows, d)
				}
			}
		})
	}
}

// TestDenseChainOnlyForChains: a graph that is not a plain chain of dense layers from its one
// input to its one output runs on the general executor.
func TestDenseChainOnlyForChains(t *testing.T) {
	for _, name := range torchBenchModels {
		m, _, _, _ := readOIPFixture(t, name)
		if m.plan.chain != nil {
			t.Errorf("%s: two inputs, yet the plan is a dense chain", name)
		}
	}
	m, err := Load(shapeHeavyModel())
	if err != nil {
		t.Fatal(err)
	}
	if m.plan.chain != nil {
		t.Error(fmt.Sprintf("shape-heavy model: the plan is a dense chain of %d", len(m.plan.chain)))
	}
}
