//go:build ortbench

package model

import (
	"strings"
	"testing"

	"github.com/freightcast/freightcast/internal/onnxpb"
)

// TestORTSVMForms runs the hand-worked SVMs of ml_svm_test.go on onnxruntime: both runtimes
// must agree (onnxruntime computes kernels in float32, hence 1e-5), but where
// docs/tabular-models.md says they part ways, and there onnxruntime must give what the docs say
// it gives.
func TestORTSVMForms(t *testing.T) {
	reg := []onnxpb.Attribute{stringAttr("kernel_type", "RBF"), floatsAttr("kernel_params", 0.5, 0, 3),
		intAttr("n_supports", 2), floatsAttr("support_vectors", 0, 1), floatsAttr("coefficients", 2, -1), floatsAttr("rho", 0.5)}
	probs3 := []onnxpb.Attribute{floatsAttr("prob_a", -1, -0.5, -2), floatsAttr("prob_b", 0.1, 0, -0.2)}
	// onnxruntime requires kernel_params, which the specification lets be absent.
	zeros := floatsAttr("kernel_params", 0, 0, 0)
	linear := []onnxpb.Attribute{intsAttr("classlabels_ints", 3, 4), floatsAttr("coefficients", 1, 0, 0, 1), floatsAttr("rho", 0.5), zeros}
	x1 := NewTensor([]int{3, 1}, []float32{2, -1, 0.3})
	cases := map[string]struct {
		model []byte
		x     *Tensor
		// theirs, when set, checks what onnxruntime answers where it parts from this runtime.
		theirs func(t *testing.T, y, z *Tensor)
	}{
		"binary, NONE":     {model: svmClassifierModel(svmBinary(zeros), 1, 2), x: x1},
		"binary, prob":     {model: svmClassifierModel(svmBinary(zeros, floatsAttr("prob_a", -2), floatsAttr("prob_b", 0.3)), 1, 2), x: x1},
		"3 classes POLY":   {model: svmClassifierModel(svm3(), 1, 3), x: x1},
		"3 classes RBF":    {model: svmClassifierModel(svm3(stringAttr("kernel_type", "RBF")), 1, 3), x: x1},
		"3 classes, probs": {model: svmClassifierModel(svm3(probs3...), 1, 3), x: x1},
		"3 classes SIGMOID, probs, SOFTMAX": {model: svmClassifierModel(svm3(append(probs3, stringAttr("kernel_type", "SIGMOID"),
			stringAttr("post_transform", "SOFTMAX"))...), 1, 3), x: x1},
		"binary, LOGISTIC": {model: svmClassifierModel(svmBinary(zeros, stringAttr("post_transform", "LOGISTIC")), 1, 2), x: x1},
		"linear form": {model: svmClassifierModel(linear, 2, 2), x: NewTensor([]int{3, 2}, []float32{2, 1, 0, 3, -2, -3}),
			// Every coefficient is positive: where the larger score is at least 0.5, onnxruntime
			// picks the second label whichever class scored higher (2.5 against 1.5 here).
			theirs: func(t *testing.T, y, _ *Tensor) {
				sameAnswers(t, "onnxruntime's Y", y, NewTensor([]int{3}, []int64{4, 4, 3}), 0)
			}},
		"regressor RBF":       {model: svmRegressorModel(reg, 1), x: x1},
		"regressor one_class": {model: svmRegressorModel(withAttrs(reg, []onnxpb.Attribute{intAttr("one_class", 1), floatsAttr("rho", -1)}), 1), x: x1},
		"regressor linear":    {model: svmRegressorModel([]onnxpb.Attribute{floatsAttr("coefficients", 1, 2), floatsAttr("rho", 1), zeros}, 2), x: NewTensor([]int{2, 2}, []float32{2, 1, -1, 0.5})},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			fx := &fixture{name: name, model: tc.model, inputs: []*Tensor{tc.x}}
			fx.json.Inputs = []oipFixtureVal{{Name: "X"}}
			if strings.HasPrefix(name, "regressor") {
				fx.json.Outputs = []oipFixtureVal{{Name: "Y"}}
			} else {
				fx.json.Outputs = []oipFixtureVal{{Name: "label"}, {Name: "scores"}}
			}
			fx.outputs = make([]*Tensor, len(fx.json.Outputs))
			s := ortSession(t, fx)
			defer s.Destroy()
			theirs := runORT(t, s, fx)
			_, ours := evalFixture(t, fx)
			got := make([]*Tensor, len(theirs))
			for i, o := range theirs {
				got[i], _ = o.tensor()
			}
			if tc.theirs != nil {
				tc.theirs(t, got[0], got[len(got)-1])
				return
			}
			for i := range got {
				tol := 1e-5
				if i == 0 && len(got) == 2 {
					tol = 0
				}
				sameAnswers(t, fx.json.Outputs[i].Name, ours[i], got[i], tol)
			}
		})
	}
}
