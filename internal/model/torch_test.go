package model

import (
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestTorchTabular runs the PyTorch tabular net of issue 12 — an nn.Embedding over an INT64
// transport mode beside FP32 numeric features, LayerNorm, Linear, GELU, Linear, Sigmoid —
// as torch.onnx.export writes it at opset 13 (LayerNorm as ReduceMean/Sub/Pow/Sqrt/Div, GELU as
// Erf) and 17 (LayerNormalization), against torch's own forward pass on the same rows.
func TestTorchTabular(t *testing.T) {
	for _, name := range []string{"torch_tabular_opset13", "torch_tabular_opset17"} {
		t.Run(name, func(t *testing.T) {
			m, inputs, want, _ := readOIPFixture(t, name)
			meta := m.Metadata()
			wantMeta := []TensorInfo{
				{Name: "numeric", DataType: "FP32", Shape: []int64{-1, 8}, DType: Float32, Type: "tensor(float)"},
				{Name: "transport_mode", DataType: "INT64", Shape: []int64{-1}, DType: Int64, Type: "tensor(int64)"},
			}
			if diff := cmp.Diff(wantMeta, meta.Inputs); diff != "" {
				t.Errorf("inputs (-want +got):\n%s", diff)
			}
			wantOut := []TensorInfo{{Name: "delay_risk", DataType: "FP32", Shape: []int64{-1, 1}, DType: Float32, Type: "tensor(float)"}}
			if diff := cmp.Diff(wantOut, meta.Outputs); diff != "" {
				t.Errorf("outputs (-want +got):\n%s", diff)
			}
			got := []*Tensor{{}}
			if err := m.Eval(inputs, got); err != nil {
				t.Fatal(err)
			}
			// torch computes in float32 too, in another order: agreement to float32 rounding.
			if d := compareTensors(want[0], got[0], 1e-5, 1e-6); d != "" {
				t.Errorf("against torch: %s", d)
			}
			// A large batch (run in chunks) gives every row the answer it gets alone.
			rows := inputs[0].Shape[0]
			big := 3*ChunkRows + 5
			bigIn := []*Tensor{{}, {}}
			bigIn[0].reset(Float32, big, 8)
			bigIn[1].reset(Int64, big)
			for r := range big {
				src := r % rows
				copy(bigIn[0].Float32[r*8:(r+1)*8], inputs[0].Float32[src*8:(src+1)*8])
				bigIn[1].Int64[r] = inputs[1].Int64[src]
			}
			bigOut := []*Tensor{{}}
			if err := m.Eval(bigIn, bigOut); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(bigOut[0].Shape, []int{big, 1}) {
				t.Fatalf("batch of %d: output shape %v", big, bigOut[0].Shape)
			}
			for r := range big {
				if bigOut[0].Float32[r] != got[0].Float32[r%rows] {
					t.Fatalf("row %d of a batch of %d: %v, alone in a batch of %d: %v", r, big, bigOut[0].Float32[r], rows, got[0].Float32[r%rows])
				}
			}
			if m.plan.rows == nil {
				t.Error("the tabular net should run in chunks of rows")
			}
			// The GELU chain is fused and applied by the dense layer before it; opset 13's
			// LayerNorm decomposition is one LayerNormalization step.
			for _, s := range m.plan.steps {
				switch s.kernel.(type) {
				case *reduceKernel, *powKernel:
					t.Errorf("step %s: the LayerNorm decomposition was not fused", s.node)
				}
				if k, ok := s.kernel.(*mapKernel); ok && k.erf {
					t.Errorf("step %s: the GELU chain was not fused", s.node)
				}
				if d, ok := s.kernel.(*denseKernel); ok && d.n == 32 && d.act != actGelu {
					t.Errorf("step %s: the hidden layer does not apply the GELU", s.node)
				}
			}
			// A row's answer does not depend on the batch it comes in.
			for _, n := range []int{1, 7} {
				for start := 0; start+n <= rows; start += 13 {
					part := []*Tensor{
						NewTensor([]int{n, 8}, inputs[0].Float32[start*8:(start+n)*8]),
						NewTensor([]int{n}, inputs[1].Int64[start:start+n]),
					}
					out := []*Tensor{{}}
					if err := m.Eval(part, out); err != nil {
						t.Fatal(err)
					}
					if d := diffFloats(got[0].Float32[start:start+n], out[0].Float32, 0); d != "" {
						t.Errorf("rows %d..%d alone: %s", start, start+n, d)
					}
				}
			}
		})
	}
}
