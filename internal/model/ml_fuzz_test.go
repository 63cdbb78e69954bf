package model

import (
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/freightcast/freightcast/internal/onnxpb"
)

// FuzzTreeEnsemble builds tree ensemble attributes from arbitrary bytes — out-of-range and
// repeated node ids, children that point back up (cycles) or into other trees, NaN and infinite
// thresholds, attribute lists one short, class ids past the labels, features past the input,
// deep chains — and compiles them. The compiler must refuse or accept, never panic; an accepted
// ensemble must run, and its three layouts (perfect, general, per-node modes) must agree on every
// row, NaNs included.
func FuzzTreeEnsemble(f *testing.F) {
	f.Add([]byte{2, 3, 0, 2, 1, 0, 1, 2, 3, 0, 4, 5, 6, 7, 8, 9})
	f.Add([]byte{1, 7, 1, 3, 2, 1, 0, 1, 0, 2, 0, 0, 0, 0, 0, 0, 5, 1, 6, 2, 7, 3, 0})
	f.Add([]byte{3, 15, 7, 1, 0xff, 0x80, 4, 2, 8, 16, 32, 64, 128, 3, 9, 27, 81, 243})
	f.Add([]byte{1, 60, 0, 1, 9}) // a deep chain
	f.Fuzz(func(t *testing.T, data []byte) {
		s := specFromBytes(data)
		const cols = 4
		fs := make([]*forest, 0, 3)
		for _, l := range []forestLayout{layoutPerfect, layoutGeneral, layoutModal} {
			fo, err := compileForestLayout(s, cols, false, l)
			if err != nil {
				if len(fs) > 0 {
					t.Fatalf("layout %d refuses what another accepted: %v", l, err)
				}
				return
			}
			fs = append(fs, fo)
		}
		x := fuzzRows(data, 9, cols)
		var outs [][]float32
		for _, fo := range fs {
			var sc treeScratch
			if err := fo.scoreFloat32(x, 9, cols, &sc); err != nil {
				t.Fatalf("a compiled forest fails to run: %v", err)
			}
			out := make([]float32, 9*fo.nTargets)
			if fo.classifier {
				fo.classify(&sc, 9, out, make([]int32, 9))
			} else {
				fo.regress(&sc, 9, out)
			}
			outs = append(outs, out)
		}
		for l := 1; l < len(outs); l++ {
			for i := range outs[0] {
				a, b := outs[0][i], outs[l][i]
				if a != b && !(a != a && b != b) && math.Abs(float64(a-b)) > 1e-5*(1+math.Abs(float64(a))) {
					t.Fatalf("layouts disagree at %d: %v and %v", i, a, b)
				}
			}
		}
	})
}

// specFromBytes reads a tree ensemble from fuzz bytes: a header (trees, nodes per tree, flags,
// targets), then per node its mode, feature, threshold and children, and one weight per leaf.
func specFromBytes(data []byte) *treeSpec {
	at := 0
	next := func() int {
		if at >= len(data) {
			at++
			return at * 7 % 251
		}
		at++
		return int(data[at-1])
	}
	trees, perTree, flags, targets := 1+next()%4, 1+next()%64, next(), 1+next()%4
	s := &treeSpec{nTargets: targets, classifier: flags&1 != 0}
	s.aggregate = []string{"SUM", "AVERAGE", "MIN", "MAX", "MEDIAN"}[flags>>1%5]
	if s.classifier {
		s.aggregate = "SUM"
	}
	s.post = []string{"NONE", "LOGISTIC", "SOFTMAX", "SOFTMAX_ZERO", "PROBIT", "BAD"}[flags>>4%6]
	modes := []string{"BRANCH_LEQ", "BRANCH_LT", "BRANCH_GTE", "BRANCH_GT", "BRANCH_EQ", "BRANCH_NEQ", "LEAF", "LEAF", "LEAF", "BRANCH_XX"}
	thresholds := []float64{0, 0.5, -0.5, 1, math.NaN(), math.Inf(1), math.Inf(-1), 1e-40, 3e38, 2}
	for tr := range trees {
		for n := range perTree {
			b := next()
			s.treeIDs = append(s.treeIDs, int64(tr))
			id := int64(n)
			if b&0x80 != 0 && b&0x40 != 0 {
				id = int64(next()) - 8 // ids out of order, negative or repeated
			}
			s.nodeIDs = append(s.nodeIDs, id)
			mode := modes[b%len(modes)]
			if n == perTree-1 && b%3 != 0 {
				mode = "LEAF"
			}
			s.modes = append(s.modes, mode)
			f := int64(next() % 5)
			if b&0x20 != 0 {
				f = int64(next()) << 20 // features past the input, or huge
			}
			s.featureIDs = append(s.featureIDs, f)
			s.thresholds = append(s.thresholds, thresholds[next()%len(thresholds)])
			// Children usually below, sometimes anywhere (cycles, self, other trees' ids).
			lo, hi := int64(2*n+1), int64(2*n+2)
			if c := next(); c%5 == 0 {
				lo, hi = int64(c%perTree), int64(next()%(perTree+3))
			}
			if lo >= int64(perTree) || hi >= int64(perTree) {
				s.modes[len(s.modes)-1] = "LEAF"
			}
			s.trueIDs = append(s.trueIDs, lo)
			s.falseIDs = append(s.falseIDs, hi)
			s.missingTrue = append(s.missingTrue, int64(next()%2))
			if mode == "LEAF" || next()%7 == 0 {
				for k := range 1 + next()%2 {
					s.leafTreeIDs = append(s.leafTreeIDs, int64(tr))
					s.leafNodeIDs = append(s.leafNodeIDs, id)
					s.leafTargets = append(s.leafTargets, int64((next()+k)%(targets+1)))
					s.leafWeights = append(s.leafWeights, float64(next()-128)/64)
				}
			}
		}
	}
	if flags&0x08 != 0 {
		s.baseValues = make([]float64, next()%(targets+2))
	}
	// Now and then, an attribute list one short.
	switch next() % 23 {
	case 0:
		s.thresholds = s.thresholds[:len(s.thresholds)-1]
	case 1:
		s.missingTrue = s.missingTrue[:len(s.missingTrue)-1]
	case 2:
		if len(s.leafWeights) > 0 {
			s.leafWeights = s.leafWeights[1:]
		}
	}
	return s
}

// fuzzRows makes rows of cols values from the fuzz bytes: grid values, NaN and infinities.
func fuzzRows(data []byte, rows, cols int) []float32 {
	vals := []float32{0, 0.5, -0.5, 1, -1, 2, float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1)), 0.25}
	x := make([]float32, rows*cols)
	for i := range x {
		b := 0
		if len(data) > 0 {
			b = int(data[(i*31)%len(data)]) + i
		}
		x[i] = vals[b%len(vals)]
	}
	return x
}

// TestTreeEnsembleRefusals checks that hostile attributes get errors that say what is wrong.
func TestTreeEnsembleRefusals(t *testing.T) {
	base := func() *treeSpec {
		return &treeSpec{
			treeIDs: []int64{0, 0, 0}, nodeIDs: []int64{0, 1, 2}, featureIDs: []int64{0, 0, 0},
			modes: []string{"BRANCH_LEQ", "LEAF", "LEAF"}, thresholds: []float64{0.5, 0, 0},
			trueIDs: []int64{1, 0, 0}, falseIDs: []int64{2, 0, 0},
			leafTreeIDs: []int64{0, 0}, leafNodeIDs: []int64{1, 2}, leafTargets: []int64{0, 1},
			leafWeights: []float64{1, 2}, nTargets: 2, aggregate: "SUM", post: "NONE", classifier: true,
		}
	}
	cases := map[string]struct {
		edit func(s *treeSpec)
		want string
	}{
		"child out of range":     {func(s *treeSpec) { s.trueIDs[0] = 7 }, "points to node 7, which the tree does not have"},
		"cycle":                  {func(s *treeSpec) { s.modes[1] = "BRANCH_LEQ"; s.trueIDs[1], s.falseIDs[1] = 0, 2 }, "has a cycle"},
		"self":                   {func(s *treeSpec) { s.falseIDs[0] = 0 }, "points to itself"},
		"repeated id":            {func(s *treeSpec) { s.nodeIDs[2] = 1 }, "appears twice"},
		"unknown mode":           {func(s *treeSpec) { s.modes[0] = "BRANCH_SOMETIMES" }, `has mode "BRANCH_SOMETIMES"`},
		"class past the labels":  {func(s *treeSpec) { s.leafTargets[1] = 2 }, "a weight is for class 2; there are 2 class labels"},
		"weight for no node":     {func(s *treeSpec) { s.leafNodeIDs[1] = 9 }, "a weight is for node 9 of tree 0, which does not exist"},
		"feature past the input": {func(s *treeSpec) { s.featureIDs[0] = 12 }, "reads feature 12, the input has 4"},
		"negative feature":       {func(s *treeSpec) { s.featureIDs[0] = -1 }, "reads feature -1"},
		"short thresholds":       {func(s *treeSpec) { s.thresholds = s.thresholds[:2] }, "nodes_values has 2 values, nodes_nodeids 3"},
		"short weights":          {func(s *treeSpec) { s.leafWeights = s.leafWeights[:1] }, "class_weights has 1 values, class_nodeids 2"},
		"bad aggregate":          {func(s *treeSpec) { s.classifier = false; s.aggregate = "MEDIAN" }, `aggregate_function "MEDIAN"`},
		"bad post transform":     {func(s *treeSpec) { s.post = "SIGMOID" }, `post_transform "SIGMOID"`},
		"base values":            {func(s *treeSpec) { s.baseValues = []float64{1, 2, 3} }, "has 3 base_values for 2 targets or classes"},
		"no nodes":               {func(s *treeSpec) { *s = treeSpec{nTargets: 1, aggregate: "SUM", post: "NONE"} }, "has no nodes"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			s := base()
			tc.edit(s)
			_, err := compileForest(s, 4, false)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one saying %q", err, tc.want)
			}
			if name == "bad aggregate" || name == "bad post transform" {
				if !errors.Is(err, ErrUnsupported) {
					t.Fatalf("error %v is not ErrUnsupported", err)
				}
			}
		})
	}
}

// FuzzMLModel mutates the one-operator ai.onnx.ml models of testdata/mlops and the small
// fixtures: Load must accept or refuse (ErrInvalidModel or ErrUnsupported), never panic, and an
// accepted model
// must run on inputs of its declared types or refuse them with ErrInvalidInput.
func FuzzMLModel(f *testing.F) {
	for _, name := range mlopsCases(f) {
		f.Add(loadCase(f, "testdata/mlops", name).model)
	}
	for _, name := range []string{"skl_logreg_grade", "skl_impute_onehot", "xgb_binary_zipmap", "skl_rf_grade",
		"te5_member_float", "skl_gb_grade_te5", "category_mapper"} {
		f.Add(loadFixture(f, name).model)
	}
	// Small SVMs of every form: the fixtures' hold hundreds of support vectors.
	f.Add(svmClassifierModel(svmBinary(floatsAttr("prob_a", -2), floatsAttr("prob_b", 0)), 1, 2))
	f.Add(svmClassifierModel(svm3(stringAttr("kernel_type", "RBF"), floatsAttr("prob_a", -1, -1, -1), floatsAttr("prob_b", 0, 0, 0)), 1, 3))
	f.Add(svmClassifierModel(svm3(stringAttr("kernel_type", "SIGMOID")), 1, 3))
	f.Add(svmClassifierModel([]onnxpb.Attribute{intsAttr("classlabels_ints", 0, 1), floatsAttr("coefficients", 1, 0, 0, 1), floatsAttr("rho", 0.5)}, 2, 2))
	f.Add(svmRegressorModel([]onnxpb.Attribute{stringAttr("kernel_type", "POLY"), floatsAttr("kernel_params", 0.5, 1, 3),
		intAttr("n_supports", 2), floatsAttr("support_vectors", 0, 1), floatsAttr("coefficients", 2, -1), floatsAttr("rho", 0.5), intAttr("one_class", 1)}, 1))
	// TreeEnsemble (opset 5) with BRANCH_MEMBER, and CategoryMapper.
	f.Add(tree5Model(membershipAttrs(), onnxpb.TypeFloat, 1, 4))
	codes := tensorInfo("Y", -1, 2)
	codes.ElemType = onnxpb.TypeInt64
	f.Add(mlModel("CategoryMapper", 1, []onnxpb.Attribute{intsAttr("cats_int64s", 1, 2), stringsAttr("cats_strings", "air", "sea")},
		onnxpb.TypeString, 2, codes))
	f.Fuzz(func(t *testing.T, data []byte) {
		recoverPanics = false
		defer func() { recoverPanics = true }()
		m, err := Load(data)
		if err != nil {
			if !errors.Is(err, ErrInvalidModel) && !errors.Is(err, ErrUnsupported) {
				t.Fatalf("error %v wraps neither ErrInvalidModel nor ErrUnsupported", err)
			}
			return
		}
		runAnyInputs(t, m, []byte{1, 3, 0})
	})
}
