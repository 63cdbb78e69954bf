package model

import (
	"testing"

	"github.com/freightcast/freightcast/internal/onnxpb"
)

// treeNode decodes a fixture and returns its tree ensemble node and ai.onnx.ml opset.
func treeNode(t testing.TB, model []byte) (*onnxpb.Node, int64) {
	t.Helper()
	pb, err := onnxpb.Decode(model)
	if err != nil {
		t.Fatal(err)
	}
	opset := int64(1)
	for _, o := range pb.OpsetImport {
		if o.Domain == "ai.onnx.ml" {
			opset = o.Version
		}
	}
	for i := range pb.Graph.Nodes {
		if n := &pb.Graph.Nodes[i]; n.OpType == "TreeEnsembleClassifier" || n.OpType == "TreeEnsembleRegressor" {
			return n, opset
		}
	}
	t.Fatal("the model has no tree ensemble")
	return nil, 0
}

var treeFixtures = []string{"xgb_binary", "xgb_grade", "xgb_delay_hours", "xgb_binary_zipmap",
	"skl_rf_binary", "skl_rf_grade", "skl_gb_binary_nozipmap", "skl_gb_grade",
	"skl_rf_delay_hours", "skl_dt_delay_hours", "skl_rf_bench"}

// TestForestMatchesFrameworks runs every tree fixture's ensemble through the compiled forest, in
// every layout and both precisions, and compares with what XGBoost and scikit-learn answered
// (labels exactly, scores within 1e-5). The inputs include rows with missing values and rows
// sitting exactly on split thresholds.
func TestForestMatchesFrameworks(t *testing.T) {
	for _, name := range treeFixtures {
		t.Run(name, func(t *testing.T) {
			fx := loadFixture(t, name)
			node, opset := treeNode(t, fx.model)
			spec, labels, err := decodeTreeSpec(&nodeCtx{node: node}, opset, node.OpType == "TreeEnsembleClassifier")
			if err != nil {
				t.Fatal(err)
			}
			in := fx.inputs[0]
			rows, cols := in.Shape[0], in.Shape[1]
			x := in.Float32
			x64 := make([]float64, len(x))
			for i, v := range x {
				x64[i] = float64(v)
			}
			for _, l := range []forestLayout{layoutPerfect, layoutGeneral, layoutModal} {
				for _, wide := range []bool{false, true} {
					f, err := compileForestLayout(spec, cols, wide, l)
					if err != nil {
						t.Fatal(err)
					}
					var s treeScratch
					if wide {
						err = f.scoreFloat64(x64, rows, cols, &s)
					} else {
						err = f.scoreFloat32(x, rows, cols, &s)
					}
					if err != nil {
						t.Fatal(err)
					}
					checkForestAnswers(t, fx, f, &s, labels, rows)
				}
			}
		})
	}
}

func checkForestAnswers(t *testing.T, fx *fixture, f *forest, s *treeScratch, labels classLabels, rows int) {
	t.Helper()
	if !f.classifier {
		out := &Tensor{}
		if err := out.reset(Float32, rows, f.nTargets); err != nil {
			t.Fatal(err)
		}
		f.regress(s, rows, out.Float32)
		sameAnswers(t, "prediction", out, fx.outputs[0], 1e-5)
		return
	}
	probs, label := &Tensor{}, &Tensor{}
	if err := probs.reset(Float32, rows, f.nTargets); err != nil {
		t.Fatal(err)
	}
	idx := make([]int32, rows)
	f.classify(s, rows, probs.Float32, idx)
	sameAnswers(t, "probabilities", probs, fx.outputs[1], 1e-5)
	if err := labels.write(label, idx); err != nil {
		t.Fatal(err)
	}
	sameAnswers(t, "label", label, fx.outputs[0], 0)
}
