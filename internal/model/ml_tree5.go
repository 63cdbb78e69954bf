package model

import (
	"errors"
	"fmt"
	"math"
)

// TreeEnsemble (ai.onnx.ml 5), the operator that replaces TreeEnsembleClassifier and
// TreeEnsembleRegressor. Its nodes are addressed by position; a child index points into the
// nodes or into the leaves (nodes_trueleafs/falseleafs say which); each leaf feeds one target
// with one weight; BRANCH_MEMBER tests membership of a set (LightGBM's categorical splits); the
// enumerations are integers; the output has the input's type.
//
// Rather than a second evaluator, it is translated into the treeSpec of the older operators and
// compiled by the same forest compiler: each tree is unrolled from its root (a node two trees
// share is copied into each; a node two parents of one tree share stays shared), a leaf becomes
// a LEAF node with its one weight, a node whose two branches are the same leaf becomes that leaf
// (the specification's one-leaf tree), and a BRANCH_MEMBER node becomes a chain of range
// tests, two per member (x < m goes on to the next member, else x ≤ m is a member), whose true
// branches all go to the member node's: an exact comparison, as the specification and its
// reference evaluator compare (onnxruntime unrolls it into BRANCH_EQ nodes the same way).
// Range tests keep the fast layouts, where BRANCH_EQ would need the per-node one.

func init() {
	register(opImpl{domain: domainML, name: "TreeEnsemble", minOpset: 5, maxOpset: maxOpsetML, compile: compileTreeEnsemble5})
}

var treeEnsemble5Attrs = []string{"aggregate_function", "leaf_targetids", "leaf_weights",
	"membership_values", "n_targets", "nodes_falseleafs", "nodes_falsenodeids", "nodes_featureids",
	"nodes_hitrates", "nodes_missing_value_tracks_true", "nodes_modes", "nodes_splits",
	"nodes_trueleafs", "nodes_truenodeids", "post_transform", "tree_roots"}

// The opset-5 enumerations, indexed by their values, as the older operators spell them.
var (
	tree5Modes      = []string{"BRANCH_LEQ", "BRANCH_LT", "BRANCH_GTE", "BRANCH_GT", "BRANCH_EQ", "BRANCH_NEQ", "BRANCH_MEMBER"}
	tree5Aggregates = []string{"AVERAGE", "SUM", "MIN", "MAX"}
	tree5Posts      = []string{"NONE", "SOFTMAX", "LOGISTIC", "SOFTMAX_ZERO", "PROBIT"}
)

const tree5Member = 6

func compileTreeEnsemble5(n *nodeCtx) (kernel, error) {
	if err := n.arity(1, 1, 1, 1); err != nil {
		return nil, err
	}
	// FLOAT16, which the specification allows too, is refused here by name: sums in half
	// precision are what its reference evaluator computes, and no converter writes them.
	if err := n.needTypes(0, Float32, Float64); err != nil {
		return nil, err
	}
	rows, cols, err := rowsCols(n.shape(0))
	if err != nil {
		return nil, err
	}
	t, err := decodeTree5(n)
	if err != nil {
		return nil, err
	}
	spec, err := t.spec()
	if err != nil {
		return nil, err
	}
	wide := n.dtype(0) == Float64
	f, err := compileForest(spec, cols, wide)
	if err != nil {
		return nil, err
	}
	n.setOutTensor(0, n.dtype(0), []int{rows, f.nTargets})
	return &treeKernel{f: f, out64: wide}, nil
}

// tree5 holds a TreeEnsemble node's attributes, checked for consistency.
type tree5 struct {
	roots                       []int64
	features, trueIDs, falseIDs []int64
	trueLeaf, falseLeaf         []int64
	missing                     []int64 // empty, or one 0/1 per node
	modes                       []uint8
	splits                      []float64
	members                     [][]float64 // per node: the set of a BRANCH_MEMBER node
	leafTargets                 []int64
	leafWeights                 []float64
	nTargets                    int64
	aggregate, post             string
}

func decodeTree5(n *nodeCtx) (*tree5, error) {
	if err := checkAttrNames(n, "TreeEnsemble", n.opset, treeEnsemble5Attrs, nil); err != nil {
		return nil, err
	}
	t := &tree5{}
	ints := []struct {
		name     string
		dst      *[]int64
		optional bool
	}{
		{"tree_roots", &t.roots, false}, {"nodes_featureids", &t.features, false},
		{"nodes_truenodeids", &t.trueIDs, false}, {"nodes_falsenodeids", &t.falseIDs, false},
		{"nodes_trueleafs", &t.trueLeaf, false}, {"nodes_falseleafs", &t.falseLeaf, false},
		{"nodes_missing_value_tracks_true", &t.missing, true}, {"leaf_targetids", &t.leafTargets, false},
	}
	for _, x := range ints {
		v, ok, err := n.attrInts(x.name)
		if err != nil {
			return nil, err
		}
		if !ok && !x.optional {
			return nil, fmt.Errorf("TreeEnsemble needs attribute %s", x.name)
		}
		*x.dst = v
	}
	modes, err := n.attrTensor("nodes_modes")
	if err != nil {
		return nil, err
	}
	if modes == nil {
		return nil, errors.New("TreeEnsemble needs attribute nodes_modes")
	}
	if modes.DType != Uint8 {
		return nil, fmt.Errorf("nodes_modes has element type %s; it must be uint8", modes.DType)
	}
	t.modes = modes.Uint8
	for _, x := range []struct {
		name string
		dst  *[]float64
	}{{"nodes_splits", &t.splits}, {"leaf_weights", &t.leafWeights}} {
		v, ok, err := n.attrFloat64s(x.name)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, fmt.Errorf("TreeEnsemble needs attribute %s", x.name)
		}
		*x.dst = v
	}
	membership, _, err := n.attrFloat64s("membership_values")
	if err != nil {
		return nil, err
	}
	if t.nTargets, err = n.attrInt("n_targets", 0); err != nil {
		return nil, err
	}
	agg, err := n.attrInt("aggregate_function", 1)
	if err != nil {
		return nil, err
	}
	if agg < 0 || agg >= int64(len(tree5Aggregates)) {
		return nil, unsupported("TreeEnsemble aggregate_function %d is not one of 0 (AVERAGE), 1 (SUM), 2 (MIN), 3 (MAX)", agg)
	}
	post, err := n.attrInt("post_transform", 0)
	if err != nil {
		return nil, err
	}
	if post < 0 || post >= int64(len(tree5Posts)) {
		return nil, unsupported("TreeEnsemble post_transform %d is not one of 0 (NONE), 1 (SOFTMAX), 2 (LOGISTIC), 3 (SOFTMAX_ZERO), 4 (PROBIT)", post)
	}
	t.aggregate, t.post = tree5Aggregates[agg], tree5Posts[post]
	if err := t.check(); err != nil {
		return nil, err
	}
	return t, t.splitMembers(membership)
}

// check refuses lists of different lengths, indexes out of range and unknown modes.
func (t *tree5) check() error {
	n, m := len(t.features), len(t.leafTargets)
	if err := sameLengths("nodes_featureids", n,
		attrLen{"nodes_truenodeids", len(t.trueIDs)}, attrLen{"nodes_falsenodeids", len(t.falseIDs)},
		attrLen{"nodes_trueleafs", len(t.trueLeaf)}, attrLen{"nodes_falseleafs", len(t.falseLeaf)},
		attrLen{"nodes_modes", len(t.modes)}, attrLen{"nodes_splits", len(t.splits)}); err != nil {
		return err
	}
	if len(t.missing) != 0 && len(t.missing) != n {
		return fmt.Errorf("nodes_missing_value_tracks_true has %d values, nodes_featureids %d", len(t.missing), n)
	}
	if len(t.leafWeights) != m {
		return fmt.Errorf("leaf_weights has %d values, leaf_targetids %d", len(t.leafWeights), m)
	}
	if n > maxTreeNodes || m > maxTreeNodes {
		return fmt.Errorf("has %d nodes and %d leaves, more than the %d allowed", n, m, maxTreeNodes)
	}
	if t.nTargets < 1 || t.nTargets > 1<<20 {
		return fmt.Errorf("n_targets is %d", t.nTargets)
	}
	if len(t.roots) == 0 {
		return errors.New("tree_roots is empty")
	}
	for k, r := range t.roots {
		if r < 0 || r >= int64(n) {
			return fmt.Errorf("tree_roots[%d] is %d; there are %d nodes", k, r, n)
		}
	}
	for i := range n {
		if t.modes[i] > tree5Member {
			return unsupported("TreeEnsemble node %d has mode %d, not one of 0 (BRANCH_LEQ) to 6 (BRANCH_MEMBER)", i, t.modes[i])
		}
		if t.features[i] < 0 || t.features[i] >= maxFeatures {
			return fmt.Errorf("nodes_featureids[%d] is %d", i, t.features[i])
		}
		if len(t.missing) > 0 && t.missing[i] != 0 && t.missing[i] != 1 {
			return fmt.Errorf("nodes_missing_value_tracks_true[%d] is %d; it must be 0 or 1", i, t.missing[i])
		}
		for _, c := range []struct {
			side      string
			leaf, idx int64
		}{{"true", t.trueLeaf[i], t.trueIDs[i]}, {"false", t.falseLeaf[i], t.falseIDs[i]}} {
			switch {
			case c.leaf != 0 && c.leaf != 1:
				return fmt.Errorf("nodes_%sleafs[%d] is %d; it must be 0 or 1", c.side, i, c.leaf)
			case c.leaf == 1 && (c.idx < 0 || c.idx >= int64(m)):
				return fmt.Errorf("node %d's %s branch is leaf %d; there are %d leaves", i, c.side, c.idx, m)
			case c.leaf == 0 && (c.idx < 0 || c.idx >= int64(n)):
				return fmt.Errorf("node %d's %s branch is node %d; there are %d nodes", i, c.side, c.idx, n)
			}
		}
	}
	return nil
}

// splitMembers gives each BRANCH_MEMBER node its set: membership_values lists the sets in node
// order, each ended by a NaN (the last one's NaN may be left out). A set may be empty.
func (t *tree5) splitMembers(values []float64) error {
	t.members = make([][]float64, len(t.modes))
	var sets [][]float64
	start := 0
	for i, v := range values {
		if math.IsNaN(v) {
			sets = append(sets, values[start:i])
			start = i + 1
		}
	}
	if start < len(values) {
		sets = append(sets, values[start:])
	}
	k := 0
	for i, m := range t.modes {
		if m != tree5Member {
			continue
		}
		if k == len(sets) {
			return fmt.Errorf("membership_values has %d sets (NaN-separated); there are more BRANCH_MEMBER nodes", len(sets))
		}
		t.members[i] = sets[k]
		k++
	}
	if k != len(sets) {
		return fmt.Errorf("membership_values has %d sets (NaN-separated) for %d BRANCH_MEMBER nodes", len(sets), k)
	}
	return nil
}

// spec unrolls every tree from its root into the older operators' form. Ids: node i keeps i,
// leaf j becomes n+j, and the chain of a BRANCH_MEMBER node with k members takes 2k−1 ids
// from n+m on.
func (t *tree5) spec() (*treeSpec, error) {
	n, m := int64(len(t.features)), int64(len(t.leafTargets))
	chain := make([]int64, n)
	next := n + m
	for i, set := range t.members {
		chain[i] = next
		next += int64(max(2*len(set)-1, 0))
	}
	s := &treeSpec{nTargets: int(t.nTargets), aggregate: t.aggregate, post: t.post}
	child := func(leaf, idx int64) int64 {
		if leaf == 1 {
			return n + idx
		}
		return idx
	}
	stamp := make([]int32, n+m) // 1 + the tree that last took the node or leaf
	var stack []int64
	for tree, root := range t.roots {
		stack = append(stack[:0], root)
		for len(stack) > 0 {
			id := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			if stamp[id] == int32(tree+1) {
				continue
			}
			stamp[id] = int32(tree + 1)
			if len(s.nodeIDs) >= maxTreeNodes {
				return nil, fmt.Errorf("the trees, unrolled from their roots, have more than %d nodes", maxTreeNodes)
			}
			if id >= n {
				s.addLeaf(int64(tree), id, t.leafTargets[id-n], t.leafWeights[id-n])
				continue
			}
			tr, fa := child(t.trueLeaf[id], t.trueIDs[id]), child(t.falseLeaf[id], t.falseIDs[id])
			if tr == fa && tr >= n {
				s.addLeaf(int64(tree), id, t.leafTargets[tr-n], t.leafWeights[tr-n])
				continue
			}
			missing := int64(0)
			if len(t.missing) > 0 {
				missing = t.missing[id]
			}
			if t.modes[id] != tree5Member {
				s.addBranch(int64(tree), id, t.features[id], tree5Modes[t.modes[id]], t.splits[id], tr, fa, missing)
				stack = append(stack, fa, tr)
				continue
			}
			set := t.members[id]
			if len(set) == 0 {
				// Nothing is a member: only NaN may go to the true branch.
				s.addBranch(int64(tree), id, t.features[id], "BRANCH_LEQ", math.NaN(), tr, fa, missing)
			}
			// Member k: "below" sends x past the member's range to the next member (or the
			// false branch), else "within" sends it to the true branch or the next member;
			// NaN passes "below" and takes "within"'s missing-value direction.
			for k, v := range set {
				below, within := id, chain[id]+int64(2*k)
				if k > 0 {
					below = chain[id] + int64(2*k-1)
				}
				no := fa
				if k < len(set)-1 {
					no = chain[id] + int64(2*k+1)
				}
				s.addBranch(int64(tree), below, t.features[id], "BRANCH_LT", v, no, within, 0)
				s.addBranch(int64(tree), within, t.features[id], "BRANCH_LEQ", v, tr, no, missing)
			}
			stack = append(stack, fa, tr)
		}
	}
	return s, nil
}

func (s *treeSpec) addBranch(tree, id, feature int64, mode string, threshold float64, tr, fa, missing int64) {
	s.treeIDs = append(s.treeIDs, tree)
	s.nodeIDs = append(s.nodeIDs, id)
	s.featureIDs = append(s.featureIDs, feature)
	s.modes = append(s.modes, mode)
	s.thresholds = append(s.thresholds, threshold)
	s.trueIDs = append(s.trueIDs, tr)
	s.falseIDs = append(s.falseIDs, fa)
	s.missingTrue = append(s.missingTrue, missing)
}

func (s *treeSpec) addLeaf(tree, id, target int64, weight float64) {
	s.addBranch(tree, id, 0, "LEAF", 0, 0, 0, 0)
	s.leafTreeIDs = append(s.leafTreeIDs, tree)
	s.leafNodeIDs = append(s.leafNodeIDs, id)
	s.leafTargets = append(s.leafTargets, target)
	s.leafWeights = append(s.leafWeights, weight)
}
