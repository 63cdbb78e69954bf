package model

import (
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/freightcast/freightcast/internal/onnxpb"
)

// SVM behaviours the scikit-learn fixtures do not reach (the binary form without probabilities,
// the POLY and SIGMOID kernels' arithmetic, one_class, the liblinear forms, integer and double
// inputs), with answers worked out by hand, and the refusals.

// svmBinary is a binary SVMClassifier over one feature: support vectors 1 (class 10) and −1
// (class 20), LINEAR, coefficients (0.5, −0.5), rho 0.25, so f(x) = 0.25 + 0.5x − 0.5(−x) =
// 0.25 + x, positive for class 10.
func svmBinary(extra ...onnxpb.Attribute) []onnxpb.Attribute {
	attrs := []onnxpb.Attribute{
		intsAttr("classlabels_ints", 10, 20), intsAttr("vectors_per_class", 1, 1),
		floatsAttr("support_vectors", 1, -1), floatsAttr("coefficients", 0.5, -0.5), floatsAttr("rho", 0.25),
		stringAttr("kernel_type", "LINEAR"),
	}
	return withAttrs(attrs, extra)
}

// withAttrs replaces or adds attributes by name; an attribute with no type removes its name.
func withAttrs(attrs, extra []onnxpb.Attribute) []onnxpb.Attribute {
	out := append([]onnxpb.Attribute(nil), attrs...)
	for _, e := range extra {
		kept := out[:0]
		for _, a := range out {
			if a.Name != e.Name {
				kept = append(kept, a)
			}
		}
		out = kept
		if e.Type != 0 {
			out = append(out, e)
		}
	}
	return out
}

// svm3 has three classes of one support vector each (1, −1, 0.5) and a POLY kernel (x·v + 1)²;
// coefficient rows (1, −1, −0.5) and (0.5, 1, −1), rho (−1, −3, 0.5).
func svm3(extra ...onnxpb.Attribute) []onnxpb.Attribute {
	attrs := []onnxpb.Attribute{
		intsAttr("classlabels_ints", 0, 1, 2), intsAttr("vectors_per_class", 1, 1, 1),
		floatsAttr("support_vectors", 1, -1, 0.5), floatsAttr("coefficients", 1, -1, -0.5, 0.5, 1, -1),
		floatsAttr("rho", -1, -3, 0.5), stringAttr("kernel_type", "POLY"), floatsAttr("kernel_params", 1, 1, 2),
	}
	return withAttrs(attrs, extra)
}

func svmClassifierModel(attrs []onnxpb.Attribute, cols int64, width int64) []byte {
	return mlModel("SVMClassifier", 1, attrs, onnxpb.TypeFloat, cols, labelInfo("label"), tensorInfo("scores", -1, width))
}

func svmRegressorModel(attrs []onnxpb.Attribute, cols int64) []byte {
	return mlModel("SVMRegressor", 1, attrs, onnxpb.TypeFloat, cols, tensorInfo("Y", -1, 1))
}

// evalRows loads a model and runs it on x.
func evalRows(t *testing.T, model []byte, x *Tensor) []*Tensor {
	t.Helper()
	m, err := Load(model)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]*Tensor, len(m.Metadata().Outputs))
	for i := range out {
		out[i] = &Tensor{}
	}
	if err := m.Eval([]*Tensor{x}, out); err != nil {
		t.Fatal(err)
	}
	return out
}

func near(t *testing.T, what string, got []float32, want ...float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %v, want %v", what, got, want)
	}
	for i, w := range want {
		if math.Abs(float64(got[i])-w) > 1e-6*(1+math.Abs(w)) {
			t.Fatalf("%s: %v, want %v", what, got, want)
		}
	}
}

func sameLabels(t *testing.T, got []int64, want ...int64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("labels %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("labels %v, want %v", got, want)
		}
	}
}

func TestSVMClassifierBinary(t *testing.T) {
	x := NewTensor([]int{3, 1}, []float32{2, -1, -0.25})
	// f = 2.25, −0.75, 0: a zero decision value votes for the second class, as in libsvm.
	out := evalRows(t, svmClassifierModel(svmBinary(), 1, 2), x)
	sameLabels(t, out[0].Int64, 10, 20, 20)
	near(t, "NONE", out[1].Float32, -2.25, 2.25, 0.75, -0.75, 0, 0)

	out = evalRows(t, svmClassifierModel(svmBinary(stringAttr("post_transform", "LOGISTIC")), 1, 2), x)
	sameLabels(t, out[0].Int64, 10, 20, 20)
	s := func(v float64) float64 { return 1 / (1 + math.Exp(-v)) }
	near(t, "LOGISTIC", out[1].Float32, s(-2.25), s(2.25), s(0.75), s(-0.75), 0.5, 0.5)

	// Platt's sigmoid with A = −2, B = 0 gives the first class σ(2f); two classes couple into
	// that pair within the iteration's stopping rule (|Qp − pᵀQp| < 0.0025).
	out = evalRows(t, svmClassifierModel(svmBinary(floatsAttr("prob_a", -2), floatsAttr("prob_b", 0)), 1, 2), x)
	sameLabels(t, out[0].Int64, 10, 20, 20)
	p := out[1].Float32
	for r, f := range []float64{2.25, -0.75, 0} {
		if math.Abs(float64(p[2*r]+p[2*r+1])-1) > 1e-6 || math.Abs(float64(p[2*r])-s(2*f)) > 2e-3 {
			t.Fatalf("row %d: probabilities %v, want about (%v, %v)", r, p[2*r:2*r+2], s(2*f), 1-s(2*f))
		}
	}
}

func TestSVMClassifierOneAgainstOne(t *testing.T) {
	// x = 1: kernels (4, 0, 2.25); f01 = −1 + 1·4 − 1·0 = 3, f02 = −3 + 0.5·4 − 0.5·2.25 =
	// −2.125, f12 = 0.5 + 1·0 − 1·2.25 = −1.75: votes (1, 0, 2), class 2.
	// x = −1: kernels (0, 4, 0.25); f01 = −5, f02 = −3.125, f12 = 4.25: votes (0, 2, 1), class 1.
	want := []float64{3, -2.125, -1.75, -5, -3.125, 4.25}
	for _, x := range []*Tensor{
		NewTensor([]int{2, 1}, []float32{1, -1}),
		NewTensor([]int{2, 1}, []float64{1, -1}),
		NewTensor([]int{2, 1}, []int64{1, -1}),
		NewTensor([]int{2, 1}, []int32{1, -1}),
	} {
		t.Run(x.DType.String(), func(t *testing.T) {
			model := svmClassifierModel(svm3(), 1, 3)
			if x.DType != Float32 {
				model = mlModel("SVMClassifier", 1, svm3(), int32(x.DType), 1, labelInfo("label"), tensorInfo("scores", -1, 3))
			}
			out := evalRows(t, model, x)
			sameLabels(t, out[0].Int64, 2, 1)
			near(t, "decision values", out[1].Float32, want...)
		})
	}
	// Probabilities: the pairwise Platt probabilities coupled into three that sum to one; the
	// label stays the vote's.
	out := evalRows(t, svmClassifierModel(svm3(floatsAttr("prob_a", -1, -1, -1), floatsAttr("prob_b", 0, 0, 0)), 1, 3),
		NewTensor([]int{2, 1}, []float32{1, -1}))
	sameLabels(t, out[0].Int64, 2, 1)
	for r := range 2 {
		row := out[1].Float32[3*r : 3*r+3]
		if sum := row[0] + row[1] + row[2]; math.Abs(float64(sum)-1) > 1e-5 {
			t.Fatalf("row %d: probabilities %v sum to %v", r, row, sum)
		}
	}
}

// TestSVMClassifierLinearForm: without vectors_per_class each class has a coefficient row and
// scores x·w + rho[0].
func TestSVMClassifierLinearForm(t *testing.T) {
	attrs := []onnxpb.Attribute{stringsAttr("classlabels_strings", "a", "b"), floatsAttr("coefficients", 1, 0, 0, 1), floatsAttr("rho", 0.5)}
	label := tensorInfo("label", -1)
	label.ElemType = onnxpb.TypeString
	m := mlModel("SVMClassifier", 5, attrs, onnxpb.TypeFloat, 2, label, tensorInfo("scores", -1, 2))
	out := evalRows(t, m, NewTensor([]int{2, 2}, []float32{2, 1, 0, 3}))
	if out[0].String[0] != "a" || out[0].String[1] != "b" {
		t.Fatalf("labels %v", out[0].String)
	}
	near(t, "scores", out[1].Float32, 2.5, 1.5, 0.5, 3.5)
}

func TestSVMRegressor(t *testing.T) {
	rbf := []onnxpb.Attribute{stringAttr("kernel_type", "RBF"), floatsAttr("kernel_params", 0.5, 0, 3),
		intAttr("n_supports", 2), floatsAttr("support_vectors", 0, 1), floatsAttr("coefficients", 2, -1), floatsAttr("rho", 0.5)}
	x := NewTensor([]int{2, 1}, []float32{1, 0})
	e := math.Exp(-0.5)
	out := evalRows(t, svmRegressorModel(rbf, 1), x)
	near(t, "RBF", out[0].Float32, 0.5+2*e-1, 0.5+2-e)
	// one_class: the sign, −1 for outliers.
	out = evalRows(t, svmRegressorModel(withAttrs(rbf, []onnxpb.Attribute{intAttr("one_class", 1), floatsAttr("rho", -1)}), 1), x)
	near(t, "one_class", out[0].Float32, -1, 1)
	sigmoid := []onnxpb.Attribute{stringAttr("kernel_type", "SIGMOID"), floatsAttr("kernel_params", 0.5, -1, 0),
		intAttr("n_supports", 1), floatsAttr("support_vectors", 2), floatsAttr("coefficients", 3), floatsAttr("rho", 0)}
	out = evalRows(t, svmRegressorModel(sigmoid, 1), NewTensor([]int{2, 1}, []float32{1, 2}))
	near(t, "SIGMOID", out[0].Float32, 0, 3*math.Tanh(1))
	linear := []onnxpb.Attribute{floatsAttr("coefficients", 1, 2), floatsAttr("rho", 1)}
	out = evalRows(t, svmRegressorModel(linear, 2), NewTensor([]int{1, 2}, []float32{2, 1}))
	near(t, "linear form", out[0].Float32, 5)
}

// TestSVMRefusals: inconsistent attributes are ErrInvalidModel, values the runtime does not
// implement ErrUnsupported, each error naming what is wrong.
func TestSVMRefusals(t *testing.T) {
	none := func(name string) onnxpb.Attribute { return onnxpb.Attribute{Name: name} }
	reg := []onnxpb.Attribute{stringAttr("kernel_type", "RBF"), floatsAttr("kernel_params", 0.5, 0, 3),
		intAttr("n_supports", 2), floatsAttr("support_vectors", 0, 1), floatsAttr("coefficients", 2, -1), floatsAttr("rho", 0.5)}
	cases := map[string]struct {
		model       []byte
		unsupported bool
		says        string
	}{
		"unknown kernel":         {svmClassifierModel(svmBinary(stringAttr("kernel_type", "CUBIC")), 1, 2), true, `kernel_type "CUBIC"`},
		"unknown post transform": {svmClassifierModel(svmBinary(stringAttr("post_transform", "SIGMOID")), 1, 2), true, `post_transform "SIGMOID"`},
		"probit of a margin":     {svmClassifierModel(svmBinary(stringAttr("post_transform", "PROBIT")), 1, 2), true, "PROBIT on a binary"},
		"fractional degree":      {svmClassifierModel(svm3(floatsAttr("kernel_params", 1, 1, 2.5)), 1, 3), true, "degree 2.5"},
		"one class":              {svmClassifierModel(svmBinary(intsAttr("classlabels_ints", 1)), 1, 1), true, "1 class label"},
		"unknown attribute":      {svmClassifierModel(svmBinary(intAttr("n_supports", 2)), 1, 2), true, "no attribute n_supports"},
		"two kernel params":      {svmClassifierModel(svmBinary(floatsAttr("kernel_params", 1, 2)), 1, 2), false, "2 kernel_params"},
		"vectors per class":      {svmClassifierModel(svm3(intsAttr("vectors_per_class", 1, 2)), 1, 3), false, "2 vectors_per_class for 3 class labels"},
		"negative count":         {svmClassifierModel(svm3(intsAttr("vectors_per_class", 2, -1, 2)), 1, 3), false, "vectors_per_class has -1"},
		"huge count":             {svmClassifierModel(svm3(intsAttr("vectors_per_class", 1<<62, 1<<62, 1)), 1, 3), false, "vectors_per_class has"},
		"short coefficients":     {svmClassifierModel(svm3(floatsAttr("coefficients", 1, 2, 3)), 1, 3), false, "has 3 coefficients, want 6"},
		"rho per pair":           {svmClassifierModel(svm3(floatsAttr("rho", 1)), 1, 3), false, "has 1 rho, want 3"},
		"prob_a alone":           {svmClassifierModel(svmBinary(floatsAttr("prob_a", 1)), 1, 2), false, "1 prob_a and 0 prob_b"},
		"prob per pair":          {svmClassifierModel(svm3(floatsAttr("prob_a", 1), floatsAttr("prob_b", 1)), 1, 3), false, "1 prob_a and prob_b, want 3"},
		"ragged vectors":         {svmClassifierModel(svm3(floatsAttr("support_vectors", 1, 2, 3, 4)), 1, 3), false, "not a whole number of features"},
		"features":               {svmClassifierModel(svm3(), 2, 3), false, "support vectors of 1 features, the input 2"},
		"no labels":              {svmClassifierModel(svmBinary(none("classlabels_ints")), 1, 2), false, "no class labels"},
		"linear with probs":      {svmClassifierModel(svmBinary(none("vectors_per_class"), none("support_vectors"), floatsAttr("prob_a", 1), floatsAttr("prob_b", 1)), 1, 2), true, "no support vectors"},
		"regressor post":         {svmRegressorModel(withAttrs(reg, []onnxpb.Attribute{stringAttr("post_transform", "LOGISTIC")}), 1), true, "post_transform LOGISTIC"},
		"regressor supports":     {svmRegressorModel(withAttrs(reg, []onnxpb.Attribute{intAttr("n_supports", 3)}), 1), false, "n_supports is 3 with 2 coefficients"},
		"regressor negative":     {svmRegressorModel(withAttrs(reg, []onnxpb.Attribute{intAttr("n_supports", -1)}), 1), false, "n_supports is -1"},
		"regressor rho":          {svmRegressorModel(withAttrs(reg, []onnxpb.Attribute{floatsAttr("rho", 1, 2)}), 1), false, "has 2 rho, want 1"},
		"regressor kernel":       {svmRegressorModel(withAttrs(reg, []onnxpb.Attribute{stringAttr("kernel_type", "rbf")}), 1), true, `kernel_type "rbf"`},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := Load(tc.model)
			if err == nil || !strings.Contains(err.Error(), tc.says) {
				t.Fatalf("error %v, want one saying %q", err, tc.says)
			}
			want := ErrInvalidModel
			if tc.unsupported {
				want = ErrUnsupported
			}
			if !errors.Is(err, want) {
				t.Fatalf("error %v is not %v", err, want)
			}
		})
	}
}
