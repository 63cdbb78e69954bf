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

// SVM is a valid ONNX model the runtime refuses by name: a scikit-learn-style linear support
// vector classifier (ai.onnx.ml SVMClassifier, opset 1) over `features` of [batch, features],
// as skl2onnx writes for an SVC. Loading it fails with model.ErrUnsupported naming the operator,
// its domain and opset, and the node "svc".
func SVM(features int) []byte {
	n := int64(features)
	coef := make([]float32, 2*features)
	for i := range coef {
		coef[i] = float32(i%3) - 1
	}
	return marshal([]onnxpb.OperatorSet{{Version: 13}, {Domain: "ai.onnx.ml", Version: 1}}, &onnxpb.Graph{
		Name: "svc",
		Nodes: []onnxpb.Node{{OpType: "SVMClassifier", Domain: "ai.onnx.ml", Name: "svc",
			Inputs: []string{"features"}, Outputs: []string{"label", "probabilities"},
			Attributes: []onnxpb.Attribute{
				{Name: "classlabels_ints", Type: onnxpb.AttrInts, Ints: []int64{0, 1}},
				{Name: "coefficients", Type: onnxpb.AttrFloats, Floats: coef},
				{Name: "kernel_type", Type: onnxpb.AttrString, S: []byte("LINEAR")},
				{Name: "rho", Type: onnxpb.AttrFloats, Floats: []float32{0.5}},
				{Name: "vectors_per_class", Type: onnxpb.AttrInts, Ints: []int64{1, 1}},
				{Name: "support_vectors", Type: onnxpb.AttrFloats, Floats: coef},
				{Name: "post_transform", Type: onnxpb.AttrString, S: []byte("NONE")},
			}}},
		Inputs: []onnxpb.ValueInfo{batchOf("features", n)},
		Outputs: []onnxpb.ValueInfo{
			{Name: "label", ElemType: onnxpb.TypeInt64, HasShape: true, Shape: []onnxpb.Dim{{Param: "N"}}},
			batchOf("probabilities", 2),
		},
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
