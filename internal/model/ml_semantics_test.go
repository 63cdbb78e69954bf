package model

import (
	"encoding/binary"
	"math"
	"testing"

	"github.com/freightcast/freightcast/internal/onnxpb"
)

// Behaviours of the ml operators that neither ONNX's reference evaluator (which reads no
// *_as_tensor attribute) nor the framework fixtures reach, with answers worked out by hand.

// stumpModel is a TreeEnsembleRegressor of one split on feature 0 (threshold t, mode), true
// leaf 1, false leaf 2, over a FLOAT input [N, 1]. A DOUBLE threshold goes in
// nodes_values_as_tensor (ai.onnx.ml opset 3).
func stumpModel(mode string, t float64, double bool, missingTrue int64) []byte {
	attrs := []onnxpb.Attribute{
		intsAttr("nodes_treeids", 0, 0, 0), intsAttr("nodes_nodeids", 0, 1, 2), intsAttr("nodes_featureids", 0, 0, 0),
		stringsAttr("nodes_modes", mode, "LEAF", "LEAF"), intsAttr("nodes_truenodeids", 1, 0, 0),
		intsAttr("nodes_falsenodeids", 2, 0, 0), intsAttr("nodes_missing_value_tracks_true", missingTrue, 0, 0),
		intsAttr("target_treeids", 0, 0), intsAttr("target_nodeids", 1, 2), intsAttr("target_ids", 0, 0),
		floatsAttr("target_weights", 1, 2), intAttr("n_targets", 1),
	}
	opset := int64(1)
	if double {
		raw := make([]byte, 24)
		for i, v := range []float64{t, 0, 0} {
			binary.LittleEndian.PutUint64(raw[8*i:], math.Float64bits(v))
		}
		attrs = append(attrs, onnxpb.Attribute{Name: "nodes_values_as_tensor", Type: onnxpb.AttrTensor,
			T: &onnxpb.Tensor{Dims: []int64{3}, DataType: onnxpb.TypeDouble, RawData: raw}})
		opset = 3
	} else {
		attrs = append(attrs, floatsAttr("nodes_values", float32(t), 0, 0))
	}
	return mlModel("TreeEnsembleRegressor", opset, attrs, onnxpb.TypeFloat, 1, tensorInfo("Y", -1, 1))
}

// mlModel is a model of one ai.onnx.ml node over one input X [N, cols] of elem type.
func mlModel(op string, opset int64, attrs []onnxpb.Attribute, elem int32, cols int64, outInfo ...onnxpb.ValueInfo) []byte {
	in := tensorInfo("X", -1, cols)
	in.ElemType = elem
	var outs []string
	for _, o := range outInfo {
		outs = append(outs, o.Name)
	}
	n := node(op, []string{"X"}, outs, attrs...)
	n.Domain = domainML
	m := &onnxpb.Model{
		IRVersion: 8, ProducerName: "freightcast-test",
		OpsetImport: []onnxpb.OperatorSet{{Version: 17}, {Domain: domainML, Version: opset}},
		Graph:       &onnxpb.Graph{Name: "ml", Nodes: []onnxpb.Node{n}, Inputs: []onnxpb.ValueInfo{in}, Outputs: outInfo},
	}
	return m.Marshal()
}

// labelInfo declares an INT64 label output [N].
func labelInfo(name string) onnxpb.ValueInfo {
	vi := tensorInfo(name, -1)
	vi.ElemType = onnxpb.TypeInt64
	return vi
}

func intsAttr(name string, v ...int64) onnxpb.Attribute {
	return onnxpb.Attribute{Name: name, Type: onnxpb.AttrInts, Ints: v}
}

func floatsAttr(name string, v ...float32) onnxpb.Attribute {
	return onnxpb.Attribute{Name: name, Type: onnxpb.AttrFloats, Floats: v}
}

func stringsAttr(name string, v ...string) onnxpb.Attribute {
	a := onnxpb.Attribute{Name: name, Type: onnxpb.AttrStrings}
	for _, s := range v {
		a.Strings = append(a.Strings, []byte(s))
	}
	return a
}

// evalColumn runs a one-output model on one FLOAT column of values.
func evalColumn(t *testing.T, data []byte, xs ...float32) []float32 {
	t.Helper()
	m, err := Load(data)
	if err != nil {
		t.Fatal(err)
	}
	out := []*Tensor{{}}
	if err := m.Eval([]*Tensor{NewTensor([]int{len(xs), 1}, xs)}, out); err != nil {
		t.Fatal(err)
	}
	return out[0].Float32
}

// TestDoubleThresholdsCompareExactly: a DOUBLE threshold (nodes_values_as_tensor) compares a
// FLOAT input as an exact comparison of the two numbers would, whatever the mode, although the
// walk compares in float32. 0.1 is not a float32: float32(0.1) is above it, the float below it
// is under it.
func TestDoubleThresholdsCompareExactly(t *testing.T) {
	above := float32(0.1)
	below := math.Nextafter32(above, 0)
	nan := float32(math.NaN())
	cases := map[string]struct {
		mode    string
		missing int64
		want    []float32 // for above, below, NaN: 1 is the true branch, 2 the false one
	}{
		"LEQ":           {"BRANCH_LEQ", 0, []float32{2, 1, 2}},
		"LT":            {"BRANCH_LT", 0, []float32{2, 1, 2}},
		"GTE":           {"BRANCH_GTE", 0, []float32{1, 2, 2}},
		"GT":            {"BRANCH_GT", 0, []float32{1, 2, 2}},
		"EQ":            {"BRANCH_EQ", 0, []float32{2, 2, 2}},
		"NEQ":           {"BRANCH_NEQ", 0, []float32{1, 1, 1}},
		"LEQ, NaN true": {"BRANCH_LEQ", 1, []float32{2, 1, 1}},
		"GT, NaN true":  {"BRANCH_GT", 1, []float32{1, 2, 1}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got := evalColumn(t, stumpModel(tc.mode, 0.1, true, tc.missing), above, below, nan)
			for i := range tc.want {
				if got[i] != tc.want[i] {
					t.Fatalf("row %d: leaf %v, want %v (all: %v)", i, got[i], tc.want[i], got)
				}
			}
		})
	}
}

// TestFloatThresholdsOnTheThreshold: with a FLOAT threshold, a value equal to it parts LEQ from
// LT and GTE from GT; ±Inf and NaN thresholds follow IEEE comparisons.
func TestFloatThresholdsOnTheThreshold(t *testing.T) {
	inf := float32(math.Inf(1))
	cases := map[string]struct {
		mode string
		t    float64
		xs   []float32
		want []float32
	}{
		"LEQ at 0.5":       {"BRANCH_LEQ", 0.5, []float32{0.5, 0.75, -inf}, []float32{1, 2, 1}},
		"LT at 0.5":        {"BRANCH_LT", 0.5, []float32{0.5, 0.25, inf}, []float32{2, 1, 2}},
		"GTE at 0.5":       {"BRANCH_GTE", 0.5, []float32{0.5, 0.25, inf}, []float32{1, 2, 1}},
		"GT at 0.5":        {"BRANCH_GT", 0.5, []float32{0.5, 0.75, -inf}, []float32{2, 1, 2}},
		"LT at -Inf":       {"BRANCH_LT", math.Inf(-1), []float32{-inf, 0}, []float32{2, 2}},
		"GTE at -Inf":      {"BRANCH_GTE", math.Inf(-1), []float32{-inf, 0}, []float32{1, 1}},
		"GT at +Inf":       {"BRANCH_GT", math.Inf(1), []float32{inf, 0}, []float32{2, 2}},
		"LEQ at +Inf":      {"BRANCH_LEQ", math.Inf(1), []float32{inf, 0}, []float32{1, 1}},
		"LEQ at NaN":       {"BRANCH_LEQ", math.NaN(), []float32{0, inf}, []float32{2, 2}},
		"GTE at NaN":       {"BRANCH_GTE", math.NaN(), []float32{0, inf}, []float32{2, 2}},
		"NEQ at NaN":       {"BRANCH_NEQ", math.NaN(), []float32{0, 1}, []float32{1, 1}},
		"EQ at 0.5":        {"BRANCH_EQ", 0.5, []float32{0.5, 0.25}, []float32{1, 2}},
		"above float max":  {"BRANCH_LEQ", 1e39, []float32{math.MaxFloat32, inf}, []float32{1, 2}},
		"below -float max": {"BRANCH_GT", -1e39, []float32{-math.MaxFloat32, -inf}, []float32{1, 2}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got := evalColumn(t, stumpModel(tc.mode, tc.t, true, 0), tc.xs...)
			if name != "above float max" && name != "below -float max" {
				// The same split with a FLOAT threshold (±1e39 is not one).
				float := evalColumn(t, stumpModel(tc.mode, tc.t, false, 0), tc.xs...)
				for i := range got {
					if float[i] != got[i] {
						t.Fatalf("row %d: FLOAT threshold gives %v, DOUBLE %v", i, float[i], got[i])
					}
				}
			}
			for i := range tc.want {
				if got[i] != tc.want[i] {
					t.Fatalf("row %d (%v): leaf %v, want %v", i, tc.xs[i], got[i], tc.want[i])
				}
			}
		})
	}
}

// binaryTrees is a single-column binary TreeEnsembleClassifier: one stump on feature 0 at 0,
// leaf weights wTrue and wFalse on class 0, labels 0 and 1.
func binaryTrees(post string, wTrue, wFalse float32) []byte {
	return mlModel("TreeEnsembleClassifier", 1, []onnxpb.Attribute{
		intsAttr("nodes_treeids", 0, 0, 0), intsAttr("nodes_nodeids", 0, 1, 2), intsAttr("nodes_featureids", 0, 0, 0),
		stringsAttr("nodes_modes", "BRANCH_LEQ", "LEAF", "LEAF"), floatsAttr("nodes_values", 0, 0, 0),
		intsAttr("nodes_truenodeids", 1, 0, 0), intsAttr("nodes_falsenodeids", 2, 0, 0),
		intsAttr("class_treeids", 0, 0), intsAttr("class_nodeids", 1, 2), intsAttr("class_ids", 0, 0),
		floatsAttr("class_weights", wTrue, wFalse), intsAttr("classlabels_int64s", 0, 1),
		{Name: "post_transform", Type: onnxpb.AttrString, S: []byte(post)},
	}, onnxpb.TypeFloat, 1, labelInfo("Y"), tensorInfo("Z", -1, 2))
}

// binaryCases are the single-column binary classifier's forms: a vote share with NONE (all
// weights positive: 1−s, s), a margin with NONE (−s, s), and LOGISTIC (σ(−s), σ(s)), whatever
// the signs.
var binaryCases = map[string]struct {
	post          string
	wTrue, wFalse float32
	// want is Z for x = -1 (true leaf) then x = 1 (false leaf), and the labels.
	want  []float32
	label []int64
}{
	"votes, NONE":             {"NONE", 0.25, 0.75, []float32{0.75, 0.25, 0.25, 0.75}, []int64{0, 1}},
	"margin, NONE":            {"NONE", -1.5, 2, []float32{1.5, -1.5, -2, 2}, []int64{0, 1}},
	"margin, LOGISTIC":        {"LOGISTIC", -1.5, 2, []float32{0.8175745, 0.18242553, 0.11920292, 0.8807971}, []int64{0, 1}},
	"positive only, LOGISTIC": {"LOGISTIC", 0.5, 2, []float32{0.37754068, 0.6224593, 0.11920292, 0.8807971}, []int64{1, 1}},
}

func TestBinaryClassifierForms(t *testing.T) {
	for name, tc := range binaryCases {
		t.Run(name, func(t *testing.T) {
			m, err := Load(binaryTrees(tc.post, tc.wTrue, tc.wFalse))
			if err != nil {
				t.Fatal(err)
			}
			out := []*Tensor{{}, {}}
			if err := m.Eval([]*Tensor{NewTensor([]int{2, 1}, []float32{-1, 1})}, out); err != nil {
				t.Fatal(err)
			}
			sameAnswers(t, "Z", out[1], NewTensor([]int{2, 2}, tc.want), 1e-6)
			sameAnswers(t, "Y", out[0], NewTensor([]int{2}, tc.label), 0)
		})
	}
}
