package model

import (
	"encoding/binary"
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/freightcast/freightcast/internal/onnxpb"
)

// TreeEnsemble (ai.onnx.ml 5) and CategoryMapper: the examples of ONNX's operator
// specification with its answers, and what the loader refuses. The fixtures trained by
// scikit-learn and XGBoost and the hand-built BRANCH_MEMBER models of testdata/models are run
// by TestFixturesMatchFrameworks.

// tensorAttr is a tensor attribute of the given element type holding vals (uint8, float32 or
// float64 values, written raw).
func tensorAttr(name string, elem int32, vals ...float64) onnxpb.Attribute {
	var raw []byte
	for _, v := range vals {
		switch elem {
		case onnxpb.TypeUint8:
			raw = append(raw, byte(v))
		case onnxpb.TypeFloat:
			raw = binary.LittleEndian.AppendUint32(raw, math.Float32bits(float32(v)))
		default:
			raw = binary.LittleEndian.AppendUint64(raw, math.Float64bits(v))
		}
	}
	return onnxpb.Attribute{Name: name, Type: onnxpb.AttrTensor,
		T: &onnxpb.Tensor{Dims: []int64{int64(len(vals))}, DataType: elem, RawData: raw}}
}

// membershipAttrs is the specification's tree_ensemble_set_membership example: a BRANCH_LEQ
// root over two BRANCH_MEMBER nodes, four targets, FLOAT.
func membershipAttrs() []onnxpb.Attribute {
	nan := math.NaN()
	return []onnxpb.Attribute{
		intAttr("n_targets", 4), intAttr("aggregate_function", 1), intAttr("post_transform", 0),
		tensorAttr("membership_values", onnxpb.TypeFloat, 1.2, 3.7, 8, 9, nan, 12, 7, nan),
		intsAttr("tree_roots", 0), tensorAttr("nodes_modes", onnxpb.TypeUint8, 0, 6, 6),
		intsAttr("nodes_featureids", 0, 0, 0), tensorAttr("nodes_splits", onnxpb.TypeFloat, 11, 232344, nan),
		intsAttr("nodes_trueleafs", 0, 1, 1), intsAttr("nodes_truenodeids", 1, 0, 1),
		intsAttr("nodes_falseleafs", 1, 0, 1), intsAttr("nodes_falsenodeids", 2, 2, 3),
		intsAttr("leaf_targetids", 0, 1, 2, 3), tensorAttr("leaf_weights", onnxpb.TypeFloat, 1, 10, 1000, 100),
	}
}

// withAttr replaces (or adds) one attribute; a nil value removes it.
func withAttr(attrs []onnxpb.Attribute, name string, a *onnxpb.Attribute) []onnxpb.Attribute {
	out := make([]onnxpb.Attribute, 0, len(attrs)+1)
	for _, x := range attrs {
		if x.Name != name {
			out = append(out, x)
		}
	}
	if a != nil {
		out = append(out, *a)
	}
	return out
}

func tree5Model(attrs []onnxpb.Attribute, elem int32, cols, targets int64) []byte {
	out := tensorInfo("Y", -1, targets)
	out.ElemType = elem
	return mlModel("TreeEnsemble", 5, attrs, elem, cols, out)
}

func TestTreeEnsemble5SpecExamples(t *testing.T) {
	nan := float32(math.NaN())
	m, err := Load(tree5Model(membershipAttrs(), onnxpb.TypeFloat, 1, 4))
	if err != nil {
		t.Fatal(err)
	}
	out := []*Tensor{{}}
	if err := m.Eval([]*Tensor{NewTensor([]int{6, 1}, []float32{1.2, 3.4, -0.12, nan, 12, 7})}, out); err != nil {
		t.Fatal(err)
	}
	want := NewTensor([]int{6, 4}, []float32{1, 0, 0, 0, 0, 0, 0, 100, 0, 0, 0, 100, 0, 0, 1000, 0, 0, 0, 1000, 0, 0, 10, 0, 0})
	sameAnswers(t, "set membership", out[0], want, 0)

	// tree_ensemble_single_tree: DOUBLE in, DOUBLE out, a child that is a leaf of another
	// target.
	single := []onnxpb.Attribute{
		intAttr("n_targets", 2), intAttr("aggregate_function", 1), intsAttr("tree_roots", 0),
		tensorAttr("nodes_modes", onnxpb.TypeUint8, 0, 0, 0), intsAttr("nodes_featureids", 0, 0, 0),
		tensorAttr("nodes_splits", onnxpb.TypeDouble, 3.14, 1.2, 4.2),
		intsAttr("nodes_truenodeids", 1, 0, 1), intsAttr("nodes_trueleafs", 0, 1, 1),
		intsAttr("nodes_falsenodeids", 2, 2, 3), intsAttr("nodes_falseleafs", 0, 1, 1),
		intsAttr("leaf_targetids", 0, 1, 0, 1), tensorAttr("leaf_weights", onnxpb.TypeDouble, 5.23, 12.12, -12.23, 7.21),
	}
	if m, err = Load(tree5Model(single, onnxpb.TypeDouble, 2, 2)); err != nil {
		t.Fatal(err)
	}
	if err := m.Eval([]*Tensor{NewTensor([]int{3, 2}, []float64{1.2, 3.4, -0.12, 1.66, 4.14, 1.77})}, out); err != nil {
		t.Fatal(err)
	}
	if out[0].DType != Float64 || m.Metadata().Outputs[0].DataType != "FP64" {
		t.Fatalf("a DOUBLE input gives %s (%s), want DOUBLE", out[0].DType, m.Metadata().Outputs[0].DataType)
	}
	sameAnswers(t, "single tree", out[0], NewTensor([]int{3, 2}, []float64{5.23, 0, 5.23, 0, 0, 12.12}), 0)
}

// TestTreeEnsemble5Membership: a member 0 (which ONNX's reference evaluator's parser takes
// for the end of the set), exact comparisons (no truncation to integers), an empty set, NaN
// with and without missing-value tracks, and a one-leaf tree written as a node whose branches
// are the same leaf.
func TestTreeEnsemble5Membership(t *testing.T) {
	nan := math.NaN()
	attrs := []onnxpb.Attribute{
		intAttr("n_targets", 2), intsAttr("tree_roots", 0, 2),
		tensorAttr("membership_values", onnxpb.TypeFloat, 0, 3, -2, 0.5, nan, nan),
		tensorAttr("nodes_modes", onnxpb.TypeUint8, 6, 6, 0), intsAttr("nodes_featureids", 0, 0, 5),
		tensorAttr("nodes_splits", onnxpb.TypeFloat, 0, 0, 0),
		intsAttr("nodes_truenodeids", 0, 1, 3), intsAttr("nodes_trueleafs", 1, 1, 1),
		intsAttr("nodes_falsenodeids", 1, 2, 3), intsAttr("nodes_falseleafs", 0, 1, 1),
		intsAttr("nodes_missing_value_tracks_true", 0, 1, 0),
		intsAttr("leaf_targetids", 0, 0, 0, 1), tensorAttr("leaf_weights", onnxpb.TypeFloat, 1, 2, 3, 0.5),
	}
	m, err := Load(tree5Model(attrs, onnxpb.TypeFloat, 1, 2))
	if err != nil {
		t.Fatal(err)
	}
	out := []*Tensor{{}}
	x := NewTensor([]int{12, 1}, []float32{0, 3, 2, float32(nan), -0, 0.99, -0.99, 3.9, 4, -2.5, -3, 0.5})
	if err := m.Eval([]*Tensor{x}, out); err != nil {
		t.Fatal(err)
	}
	// The second tree reads feature 5 of a one-column input: it is a leaf, never a split.
	want := NewTensor([]int{12, 2}, []float32{1, 0.5, 1, 0.5, 3, 0.5, 2, 0.5, 1, 0.5,
		3, 0.5, 3, 0.5, 3, 0.5, 3, 0.5, 3, 0.5, 3, 0.5, 1, 0.5})
	sameAnswers(t, "membership", out[0], want, 0)
}

func TestTreeEnsemble5Refusals(t *testing.T) {
	base := membershipAttrs()
	ptr := func(a onnxpb.Attribute) *onnxpb.Attribute { return &a }
	cases := map[string]struct {
		attrs    []onnxpb.Attribute
		elem     int32
		sentinel error
		want     string
	}{
		"float16 input":    {base, onnxpb.TypeFloat16, ErrUnsupported, "float16"},
		"unknown mode":     {withAttr(base, "nodes_modes", ptr(tensorAttr("nodes_modes", onnxpb.TypeUint8, 0, 7, 6))), 0, ErrUnsupported, "mode 7"},
		"unknown agg":      {withAttr(base, "aggregate_function", ptr(intAttr("aggregate_function", 4))), 0, ErrUnsupported, "aggregate_function 4"},
		"unknown post":     {withAttr(base, "post_transform", ptr(intAttr("post_transform", 5))), 0, ErrUnsupported, "post_transform 5"},
		"unknown attr":     {append(base, intAttr("base_values", 1)), 0, ErrUnsupported, "base_values"},
		"modes not uint8":  {withAttr(base, "nodes_modes", ptr(tensorAttr("nodes_modes", onnxpb.TypeFloat, 0, 6, 6))), 0, ErrInvalidModel, "uint8"},
		"short splits":     {withAttr(base, "nodes_splits", ptr(tensorAttr("nodes_splits", onnxpb.TypeFloat, 1, 2))), 0, ErrInvalidModel, "nodes_splits has 2"},
		"short weights":    {withAttr(base, "leaf_weights", ptr(tensorAttr("leaf_weights", onnxpb.TypeFloat, 1))), 0, ErrInvalidModel, "leaf_weights has 1"},
		"leaf past end":    {withAttr(base, "nodes_falsenodeids", ptr(intsAttr("nodes_falsenodeids", 2, 2, 4))), 0, ErrInvalidModel, "leaf 4"},
		"node past end":    {withAttr(base, "nodes_truenodeids", ptr(intsAttr("nodes_truenodeids", 3, 0, 1))), 0, ErrInvalidModel, "node 3"},
		"cycle":            {withAttr(base, "nodes_falsenodeids", ptr(intsAttr("nodes_falsenodeids", 2, 0, 3))), 0, ErrInvalidModel, "cycle"},
		"self":             {withAttr(base, "nodes_truenodeids", ptr(intsAttr("nodes_truenodeids", 0, 0, 1))), 0, ErrInvalidModel, "itself"},
		"leaf flag 2":      {withAttr(base, "nodes_trueleafs", ptr(intsAttr("nodes_trueleafs", 2, 1, 1))), 0, ErrInvalidModel, "0 or 1"},
		"root past end":    {withAttr(base, "tree_roots", ptr(intsAttr("tree_roots", 3))), 0, ErrInvalidModel, "tree_roots[0]"},
		"no roots":         {withAttr(base, "tree_roots", nil), 0, ErrInvalidModel, "tree_roots"},
		"target past end":  {withAttr(base, "leaf_targetids", ptr(intsAttr("leaf_targetids", 0, 1, 2, 4))), 0, ErrInvalidModel, "target 4"},
		"no n_targets":     {withAttr(base, "n_targets", nil), 0, ErrInvalidModel, "n_targets"},
		"feature past end": {withAttr(base, "nodes_featureids", ptr(intsAttr("nodes_featureids", 0, 1, 0))), 0, ErrInvalidModel, "feature 1"},
		"one set short":    {withAttr(base, "membership_values", ptr(tensorAttr("membership_values", onnxpb.TypeFloat, 1, 2))), 0, ErrInvalidModel, "1 sets"},
		"no sets":          {withAttr(base, "membership_values", nil), 0, ErrInvalidModel, "0 sets"},
		"bad missing":      {append(base, intsAttr("nodes_missing_value_tracks_true", 0, 2, 0)), 0, ErrInvalidModel, "0 or 1"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			elem := c.elem
			if elem == 0 {
				elem = onnxpb.TypeFloat
			}
			_, err := Load(tree5Model(c.attrs, elem, 1, 4))
			if !errors.Is(err, c.sentinel) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Load: %v, want %v naming %q", err, c.sentinel, c.want)
			}
		})
	}
	// The older operators stay at opsets 1 to 4, TreeEnsemble starts at 5.
	if _, err := Load(mlModel("TreeEnsemble", 4, base, onnxpb.TypeFloat, 1, tensorInfo("Y", -1, 4))); err == nil {
		t.Fatal("TreeEnsemble loads at ai.onnx.ml opset 4")
	}
}

func TestCategoryMapper(t *testing.T) {
	attrs := []onnxpb.Attribute{
		intsAttr("cats_int64s", 1, 2, 3, 7), stringsAttr("cats_strings", "air", "sea", "rail", "sea"),
		intAttr("default_int64", -9), stringAttr("default_string", "unknown"),
	}
	toInt := tensorInfo("Y", -1)
	toInt.ElemType = onnxpb.TypeInt64
	m, err := Load(mlModel("CategoryMapper", 1, attrs, onnxpb.TypeString, 2, toInt))
	if err != nil {
		t.Fatal(err)
	}
	out := []*Tensor{{}}
	if err := m.Eval([]*Tensor{NewTensor([]int{2, 2}, []string{"sea", "road", "air", ""})}, out); err != nil {
		t.Fatal(err)
	}
	// "sea" repeats: the last pair counts.
	sameAnswers(t, "strings to ints", out[0], NewTensor([]int{2, 2}, []int64{7, -9, 1, -9}), 0)

	toStr := tensorInfo("Y", -1)
	toStr.ElemType = onnxpb.TypeString
	if m, err = Load(mlModel("CategoryMapper", 1, attrs, onnxpb.TypeInt64, 2, toStr)); err != nil {
		t.Fatal(err)
	}
	if err := m.Eval([]*Tensor{NewTensor([]int{1, 2}, []int64{3, 4})}, out); err != nil {
		t.Fatal(err)
	}
	sameAnswers(t, "ints to strings", out[0], NewTensor([]int{1, 2}, []string{"rail", "unknown"}), 0)

	short := withAttr(attrs, "cats_strings", &onnxpb.Attribute{Name: "cats_strings", Type: onnxpb.AttrStrings, Strings: [][]byte{[]byte("a")}})
	if _, err := Load(mlModel("CategoryMapper", 1, short, onnxpb.TypeInt64, 2, toStr)); !errors.Is(err, ErrInvalidModel) {
		t.Fatalf("lists of different lengths: %v", err)
	}
	if _, err := Load(mlModel("CategoryMapper", 1, attrs, onnxpb.TypeFloat, 2, toStr)); !errors.Is(err, ErrUnsupported) {
		t.Fatalf("a FLOAT input: %v", err)
	}
}

// FuzzTreeEnsemble5 builds TreeEnsemble (opset 5) attributes from arbitrary bytes — children
// anywhere (cycles, self, past the ends), leaf flags other than 0 and 1, every mode and some
// unknown, membership sets of any size (empty, holding 0, NaN-less tails), roots that share
// nodes, nodes whose branches name one leaf — and compiles them. Anything accepted must run,
// and agree with a direct walk of the opset-5 structure as the specification describes it.
func FuzzTreeEnsemble5(f *testing.F) {
	f.Add([]byte{3, 2, 0, 1, 0, 6, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12})
	f.Add([]byte{9, 4, 3, 2, 6, 6, 6, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 0x80, 0x40, 7})
	f.Add([]byte{1, 1, 1, 0, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{12, 8, 2, 0xff, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa})
	f.Fuzz(func(t *testing.T, data []byte) {
		t5, members := tree5FromBytes(data)
		const cols, rows = 3, 9
		if t5.check() != nil || t5.splitMembers(members) != nil {
			return
		}
		spec, err := t5.spec()
		if err != nil {
			return
		}
		fo, err := compileForest(spec, cols, false)
		if err != nil {
			return
		}
		x := fuzzRows(data, rows, cols)
		var sc treeScratch
		if err := fo.scoreFloat32(x, rows, cols, &sc); err != nil {
			t.Fatalf("a compiled forest fails to run: %v", err)
		}
		got := make([]float64, rows*fo.nTargets)
		regressInto(fo, &sc, rows, got)
		for r := range rows {
			want, ok := walkTree5(t5, x[r*cols:(r+1)*cols])
			if !ok {
				t.Fatalf("the compiler accepted trees the walk cannot finish (a cycle)")
			}
			for k, w := range want {
				g := got[r*fo.nTargets+k]
				if math.Abs(g-w) > 1e-4*(1+math.Abs(w)) {
					t.Fatalf("row %d target %d: %v, the walk says %v", r, k, g, w)
				}
			}
		}
	})
}

// tree5FromBytes reads a TreeEnsemble from fuzz bytes: a header (nodes, leaves, roots,
// flags), then per node its mode, feature, split and children, then the leaves, the roots and
// the membership values.
func tree5FromBytes(data []byte) (*tree5, []float64) {
	at := 0
	next := func() int {
		at++
		if at > len(data) {
			return at * 7 % 251
		}
		return int(data[at-1])
	}
	n, m, nroots, flags := 1+next()%12, 1+next()%10, 1+next()%4, next()
	t := &tree5{nTargets: int64(1 + flags%3), aggregate: tree5Aggregates[flags>>2%4], post: "NONE"}
	splits := []float64{0, 0.5, -0.5, 1, math.NaN(), math.Inf(1), 0.25, 2}
	nMember := 0
	for i := range n {
		b := next()
		mode := uint8(b % 7)
		if b == 0xff {
			mode = 9 // unknown
		}
		nMember += int(b2i(mode == tree5Member))
		t.modes = append(t.modes, mode)
		t.features = append(t.features, int64(next()%cols5(b)))
		t.splits = append(t.splits, splits[next()%len(splits)])
		t.missing = append(t.missing, int64(next()%2))
		for side := range 2 {
			c := next()
			leaf := int64(c % 2)
			idx := int64(c>>1) % int64(m)
			switch {
			case c&0xe0 == 0xe0:
				idx = int64(c>>1) % int64(max(n, m)+1) // anywhere: cycles, past the ends
			case leaf == 0 && i+1+side < n:
				idx = int64(i + 1 + side) // usually below: a tree, not a cycle
			default:
				leaf = 1
			}
			if c == 0xfe {
				leaf = 2
			}
			if side == 0 {
				t.trueLeaf, t.trueIDs = append(t.trueLeaf, leaf), append(t.trueIDs, idx)
			} else {
				t.falseLeaf, t.falseIDs = append(t.falseLeaf, leaf), append(t.falseIDs, idx)
			}
		}
	}
	for range m {
		k := int64(next()) % t.nTargets
		if next()%29 == 0 {
			k = t.nTargets // past the targets
		}
		t.leafTargets = append(t.leafTargets, k)
		t.leafWeights = append(t.leafWeights, float64(next()-128)/32)
	}
	for range nroots {
		t.roots = append(t.roots, int64(next()%(n+1)))
	}
	var members []float64
	for range nMember {
		for range next() % 4 {
			members = append(members, []float64{0, 1, -1, 2, 0.25, -0.5, math.Inf(1)}[next()%7])
		}
		if next()%11 != 0 {
			members = append(members, math.NaN())
		}
	}
	return t, members
}

// cols5 is how many features a fuzzed node may read: now and then one past the 3 columns.
func cols5(b int) int {
	if b&0x60 == 0x60 {
		return 4
	}
	return 3
}

// walkTree5 is the specification's walk of one row: every tree from its root to a leaf,
// weights aggregated per target (MIN and MAX leave 0 where no leaf voted, as the runtime
// does). ok is false when a walk does not end.
func walkTree5(t *tree5, x []float32) ([]float64, bool) {
	sum := make([]float64, t.nTargets)
	voted := make([]bool, t.nTargets)
	n := len(t.features)
	for _, root := range t.roots {
		i := root
		for steps := 0; ; steps++ {
			if steps > n {
				return nil, false
			}
			leaf, next := t.falseLeaf[i], t.falseIDs[i]
			sameLeaf := t.trueLeaf[i] == 1 && leaf == 1 && t.trueIDs[i] == next
			if !sameLeaf && tree5True(t, int(i), float64(x[t.features[i]])) {
				leaf, next = t.trueLeaf[i], t.trueIDs[i]
			}
			if leaf == 0 {
				i = next
				continue
			}
			k, w := t.leafTargets[next], t.leafWeights[next]
			switch {
			case t.aggregate == "MIN" && voted[k]:
				sum[k] = min(sum[k], w)
			case t.aggregate == "MAX" && voted[k]:
				sum[k] = max(sum[k], w)
			case t.aggregate == "MIN" || t.aggregate == "MAX":
				sum[k] = w
			default:
				sum[k] += w
			}
			voted[k] = true
			break
		}
	}
	if t.aggregate == "AVERAGE" {
		for k := range sum {
			sum[k] /= float64(len(t.roots))
		}
	}
	return sum, true
}

func tree5True(t *tree5, i int, v float64) bool {
	if v != v && t.missing[i] == 1 {
		return true
	}
	s := t.splits[i]
	switch t.modes[i] {
	case 0:
		return v <= s
	case 1:
		return v < s
	case 2:
		return v >= s
	case 3:
		return v > s
	case 4:
		return v == s
	case 5:
		return v != s
	}
	for _, m := range t.members[i] {
		if v == m {
			return true
		}
	}
	return false
}
