// Package onnxtest builds small real ONNX files for tests that need a model the runtime loads, or
// one it refuses, without a framework at hand: the operator's envtest suite (which checks models
// before rolling them) and the end-to-end suite.
package onnxtest

import (
	"github.com/freightcast/freightcast/internal/onnxpb"
)

// Linear is a model that loads: one FP32 input `features` of [batch, len(weights)] times a
// [len(weights), 1] weight matrix, one output `score` of [batch, 1]. It declares no feature names
// (metadata freightcast.io/features), so it serves any len(weights) names. Different weights give
// different files.
func Linear(weights ...float32) []byte {
	n := int64(len(weights))
	return marshal([]onnxpb.OperatorSet{{Version: 13}}, &onnxpb.Graph{
		Name:         "linear",
		Nodes:        []onnxpb.Node{{OpType: "MatMul", Inputs: []string{"features", "w"}, Outputs: []string{"score"}, Name: "score"}},
		Initializers: []onnxpb.Tensor{{Name: "w", Dims: []int64{n, 1}, DataType: onnxpb.TypeFloat, FloatData: weights}},
		Inputs:       []onnxpb.ValueInfo{batchOf("features", n)},
		Outputs:      []onnxpb.ValueInfo{batchOf("score", 1)},
	})
}

// Refused is a valid ONNX model the runtime refuses by name: an MLP layer as onnxruntime saves
// it after optimising the graph offline, its Gemm and activation fused into one FusedGemm of
// onnxruntime's own domain com.microsoft (opset 1), over `features` of [batch, features].
// Loading it fails with model.ErrUnsupported naming the operator, its domain and the node
// "fused".
func Refused(features int) []byte {
	n := int64(features)
	w := make([]float32, 2*features)
	for i := range w {
		w[i] = float32(i%3) - 1
	}
	return marshal([]onnxpb.OperatorSet{{Version: 13}, {Domain: "com.microsoft", Version: 1}}, &onnxpb.Graph{
		Name: "fused",
		Nodes: []onnxpb.Node{{OpType: "FusedGemm", Domain: "com.microsoft", Name: "fused",
			Inputs: []string{"features", "w", "b"}, Outputs: []string{"hidden"},
			Attributes: []onnxpb.Attribute{
				{Name: "activation", Type: onnxpb.AttrString, S: []byte("Relu")},
				{Name: "transB", Type: onnxpb.AttrInt, I: 0},
			}}},
		Initializers: []onnxpb.Tensor{
			{Name: "w", Dims: []int64{n, 2}, DataType: onnxpb.TypeFloat, FloatData: w},
			{Name: "b", Dims: []int64{2}, DataType: onnxpb.TypeFloat, FloatData: []float32{0.5, -0.5}},
		},
		Inputs:  []onnxpb.ValueInfo{batchOf("features", n)},
		Outputs: []onnxpb.ValueInfo{batchOf("hidden", 2)},
	})
}

// Truncated is the first half of a model that loads: not a consistent ONNX file (model.ErrInvalidModel).
func Truncated(weights ...float32) []byte {
	b := Linear(weights...)
	return b[:len(b)/2]
}

func batchOf(name string, width int64) onnxpb.ValueInfo {
	return onnxpb.ValueInfo{Name: name, ElemType: onnxpb.TypeFloat, HasShape: true,
		Shape: []onnxpb.Dim{{Param: "N"}, {Value: width, Fixed: true}}}
}

func marshal(opsets []onnxpb.OperatorSet, g *onnxpb.Graph) []byte {
	m := &onnxpb.Model{IRVersion: 8, ProducerName: "freightcast-onnxtest", ProducerVersion: "1", OpsetImport: opsets, Graph: g}
	return m.Marshal()
}
