package model

// Tree ensembles (ai.onnx.ml TreeEnsembleClassifier and TreeEnsembleRegressor) compiled into a
// flat structure-of-arrays forest.
//
// The attributes describe trees as lists of nodes that point at each other by id. At load they
// are checked (every id resolves, no cycles, classes within the label list, features within the
// input) and rewritten so that every split reads "x <= threshold goes low, else high", with
// NaN's direction as a per-node flag: LT, GTE and GT become LEQ with the next float below the
// threshold and the children swapped where needed, so evaluation needs one comparison and no
// switch on the mode. Thresholds are compared in the input's precision, as onnxruntime does
// (float32 for FLOAT, INT64 and INT32 inputs, float64 for DOUBLE); a DOUBLE threshold from
// nodes_values_as_tensor with a FLOAT input is rounded toward the side that keeps every float32
// input on the branch an exact comparison sends it to. Only BRANCH_EQ and BRANCH_NEQ (XGBoost's
// and LightGBM's categorical splits) keep the mode per node, in a slower general layout.
//
// Shallow trees (XGBoost's and most forests' depth ≤ 12 or so) are laid out as perfect binary
// trees in breadth-first order, padded to the ensemble's depth: a leaf above the bottom fills
// every slot below it. Walking one is D steps of i = 2i + (t < x), with no data-dependent
// branch, eight walks at a time (ml_tree_walk.go). Deeper or very unbalanced ensembles, where
// padding would cost too much memory, keep their nodes as they are with explicit children.

import (
	"errors"
	"fmt"
	"math"
	"slices"
)

// treeSpec holds a TreeEnsemble node's attributes, decoded but not yet checked. Thresholds and
// weights are widened to float64 whatever attribute they came from (FLOATS, or the DOUBLE
// *_as_tensor of opset 3): a float32 threshold widens exactly, so one exact comparison rule
// serves both.
type treeSpec struct {
	treeIDs, nodeIDs, featureIDs []int64
	modes                        []string
	thresholds                   []float64
	trueIDs, falseIDs            []int64
	missingTrue                  []int64 // may be empty: no node sends NaN to its true branch
	leafTreeIDs, leafNodeIDs     []int64 // class_* or target_*
	leafTargets                  []int64
	leafWeights                  []float64
	baseValues                   []float64
	nTargets                     int // the number of classes, or n_targets
	aggregate                    string
	post                         string
	classifier                   bool
}

// node modes.
const (
	modeLeaf uint8 = iota
	modeLEQ
	modeLT
	modeGTE
	modeGT
	modeEQ
	modeNEQ
)

var modeNames = map[string]uint8{
	"LEAF": modeLeaf, "BRANCH_LEQ": modeLEQ, "BRANCH_LT": modeLT, "BRANCH_GTE": modeGTE,
	"BRANCH_GT": modeGT, "BRANCH_EQ": modeEQ, "BRANCH_NEQ": modeNEQ,
}

type aggregate uint8

const (
	aggSum aggregate = iota
	aggAverage
	aggMin
	aggMax
)

var aggregateNames = map[string]aggregate{"SUM": aggSum, "AVERAGE": aggAverage, "MIN": aggMin, "MAX": aggMax}

// postTransform is applied to each row's scores.
type postTransform uint8

const (
	postNone postTransform = iota
	postLogistic
	postSoftmax
	postSoftmaxZero
	postProbit
)

var postNames = map[string]postTransform{
	"NONE": postNone, "LOGISTIC": postLogistic, "SOFTMAX": postSoftmax,
	"SOFTMAX_ZERO": postSoftmaxZero, "PROBIT": postProbit,
}

// Limits of the forest compiler. The perfect layout pads trees to the ensemble's depth; it is
// used while the padding stays within perfectBudget node slots and a few times the real size.
const (
	maxTreeNodes   = 1 << 26
	maxFeatures    = 1 << 24
	maxPerfectDeep = 16
	perfectBudget  = 1 << 22
)

// forest is a compiled tree ensemble: immutable after compile, safe for concurrent use.
type forest struct {
	nTrees    int
	nTargets  int
	nFeatures int // the input needs at least this many columns
	agg       aggregate
	post      postTransform
	base      []float64 // empty, or one per target
	// binary is the single-column binary classifier form: two classes, every weight on class
	// 0, whose score s stands for the second class.
	binary      bool
	allPositive bool // every leaf weight ≥ 0 (decides the binary form's NONE output)
	classifier  bool

	// Leaves, by slot: tree t's slots are slotsOf[t] to slotsOf[t+1]. A tree whose leaves all
	// feed one target (single[t] ≥ 0) adds slotValue; any other adds the (target, weight) pairs
	// spanTgt/spanW from slotStart[slot] to slotStart[slot+1]. A MIN or MAX ensemble uses spans
	// only, so that a leaf without weights is told from a weight of 0.
	single    []int32
	slotsOf   []int32
	slotValue []float64
	slotStart []int32
	spanTgt   []int32
	spanW     []float64
	// wide forests add up scores in float64; the others in float32, as onnxruntime does for
	// float32 thresholds (and XGBoost for its margins), from these float32 copies.
	wide        bool
	slotValue32 []float32
	spanW32     []float32

	// Exactly one of the layouts is set, in the precision the input is compared in.
	perfect32 *perfectLayout[float32]
	perfect64 *perfectLayout[float64]
	general32 *generalLayout[float32]
	general64 *generalLayout[float64]
	modal     *modalLayout
}

// perfectLayout holds every tree as a perfect binary tree of depth depth in breadth-first order,
// numbered from 1 as in a heap: tree t's node i (1 ≤ i < 2^depth) is at t·2^depth+i (position 0
// is unused), its children at 2i (x ≤ threshold) and 2i+1. After depth steps a walk is at
// 2^depth+j for its leaf slot j, slotsOf[t]+j.
type perfectLayout[T float32 | float64] struct {
	depth  int
	nodes  []pnode[T]
	nanLow []bool // NaN goes to the low child (read only for rows with a NaN)
}

// pnode is a split of the perfect layout: threshold and feature side by side, one load. The
// feature is stored as its offset in a transposed block of input rows, feature·treeRowBlock.
type pnode[T float32 | float64] struct {
	thresh T
	offset int32
}

// generalLayout keeps the nodes as they are: an internal node i goes to low[i] when x ≤ thresh,
// high[i] otherwise; a leaf has feature −1 and its slot in low.
type generalLayout[T float32 | float64] struct {
	root    []int32 // per tree
	feature []int32
	thresh  []T
	low     []int32
	high    []int32
	nanLow  []bool
}

// modalLayout is the general layout with each node's own comparison, for ensembles that use
// BRANCH_EQ or BRANCH_NEQ. Comparisons happen in float64 (the input value widened), against
// the attribute's threshold.
type modalLayout struct {
	root    []int32
	mode    []uint8
	feature []int32
	thresh  []float64
	trueN   []int32
	falseN  []int32
	missing []bool
}

type nodeKey struct{ tree, node int64 }

// forestLayout picks a layout; layoutAuto lets the compiler choose (tests force the others).
type forestLayout uint8

const (
	layoutAuto forestLayout = iota
	layoutPerfect
	layoutGeneral
	layoutModal
)

// compileForest checks a spec and builds the forest for an input of cols columns (cols < 0 when
// the width is known only at run time), compared in float64 precision when wide.
func compileForest(s *treeSpec, cols int, wide bool) (*forest, error) {
	return compileForestLayout(s, cols, wide, layoutAuto)
}

func compileForestLayout(s *treeSpec, cols int, wide bool, layout forestLayout) (*forest, error) {
	n := len(s.nodeIDs)
	if err := s.checkLengths(); err != nil {
		return nil, err
	}
	if n == 0 {
		return nil, errors.New("has no nodes")
	}
	if n > maxTreeNodes {
		return nil, fmt.Errorf("has %d nodes, more than the %d allowed", n, maxTreeNodes)
	}
	f := &forest{nTargets: s.nTargets, classifier: s.classifier, wide: wide}
	if s.nTargets < 1 {
		return nil, fmt.Errorf("has %d targets or classes; it needs at least one", s.nTargets)
	}
	var ok bool
	if f.agg, ok = aggregateNames[s.aggregate]; !ok {
		return nil, unsupported("aggregate_function %q is not one of SUM, AVERAGE, MIN, MAX", s.aggregate)
	}
	if f.post, ok = postNames[s.post]; !ok {
		return nil, unsupported("post_transform %q is not one of NONE, LOGISTIC, SOFTMAX, SOFTMAX_ZERO, PROBIT", s.post)
	}
	if s.classifier && f.agg != aggSum {
		return nil, unsupported("a classifier aggregates with SUM, not %s", s.aggregate)
	}
	modes := make([]uint8, n)
	index := make(map[nodeKey]int32, n)
	hasEq := false
	for i := range n {
		m, ok := modeNames[s.modes[i]]
		if !ok {
			return nil, fmt.Errorf("node %d of tree %d has mode %q", s.nodeIDs[i], s.treeIDs[i], s.modes[i])
		}
		modes[i] = m
		hasEq = hasEq || m == modeEQ || m == modeNEQ
		k := nodeKey{s.treeIDs[i], s.nodeIDs[i]}
		if _, dup := index[k]; dup {
			return nil, fmt.Errorf("node %d of tree %d appears twice", k.node, k.tree)
		}
		index[k] = int32(i)
		if m != modeLeaf {
			if s.featureIDs[i] < 0 || s.featureIDs[i] >= maxFeatures {
				return nil, fmt.Errorf("node %d of tree %d reads feature %d", k.node, k.tree, s.featureIDs[i])
			}
			f.nFeatures = max(f.nFeatures, int(s.featureIDs[i])+1)
		}
	}
	if cols >= 0 && f.nFeatures > cols {
		return nil, fmt.Errorf("reads feature %d, the input has %d", f.nFeatures-1, cols)
	}
	// Trees in the order their ids first appear; a tree's root is its first node.
	var roots []int32
	seen := map[int64]bool{}
	for i, t := range s.treeIDs {
		if !seen[t] {
			seen[t] = true
			roots = append(roots, int32(i))
		}
	}
	f.nTrees = len(roots)
	// Children, resolved within their tree.
	trueN := make([]int32, n)
	falseN := make([]int32, n)
	for i := range n {
		if modes[i] == modeLeaf {
			continue
		}
		for j, id := range [2]int64{s.trueIDs[i], s.falseIDs[i]} {
			c, ok := index[nodeKey{s.treeIDs[i], id}]
			if !ok {
				return nil, fmt.Errorf("node %d of tree %d points to node %d, which the tree does not have", s.nodeIDs[i], s.treeIDs[i], id)
			}
			if c == int32(i) {
				return nil, fmt.Errorf("node %d of tree %d points to itself", s.nodeIDs[i], s.treeIDs[i])
			}
			if j == 0 {
				trueN[i] = c
			} else {
				falseN[i] = c
			}
		}
	}
	depths, err := treeDepths(roots, modes, trueN, falseN, s)
	if err != nil {
		return nil, err
	}
	weights, err := f.leafWeights(s, index, modes)
	if err != nil {
		return nil, err
	}
	if err := f.baseValues(s); err != nil {
		return nil, err
	}
	f.single = make([]int32, len(roots))
	for t, r := range roots {
		f.single[t] = f.singleTarget(r, modes, trueN, falseN, weights)
	}
	missing := func(i int) bool { return i < len(s.missingTrue) && s.missingTrue[i] == 1 }
	b := &layoutBuilder{f: f, roots: roots, modes: modes, features: s.featureIDs, trueN: trueN, falseN: falseN, weights: weights}
	if hasEq || layout == layoutModal {
		b.buildModal(s, missing)
		return f, nil
	}
	b.canon = canonicalize(s, modes, trueN, falseN, missing)
	maxDepth := slices.Max(depths)
	perfect := usePerfect(maxDepth, len(roots), n)
	if layout == layoutPerfect {
		// Forced (by tests), within what memory allows.
		perfect = maxDepth <= maxPerfectDeep && len(roots)<<maxDepth <= perfectBudget
	}
	if perfect && layout != layoutGeneral {
		if wide {
			f.perfect64 = buildPerfect(b, maxDepth, func(t float64) float64 { return t })
		} else {
			f.perfect32 = buildPerfect(b, maxDepth, down32)
		}
		return f, nil
	}
	if wide {
		f.general64 = buildGeneral(b, func(t float64) float64 { return t })
	} else {
		f.general32 = buildGeneral(b, down32)
	}
	return f, nil
}

func (s *treeSpec) checkLengths() error {
	n := len(s.nodeIDs)
	if err := sameLengths("nodes_nodeids", n,
		attrLen{"nodes_treeids", len(s.treeIDs)}, attrLen{"nodes_featureids", len(s.featureIDs)},
		attrLen{"nodes_modes", len(s.modes)}, attrLen{"nodes_values", len(s.thresholds)},
		attrLen{"nodes_truenodeids", len(s.trueIDs)}, attrLen{"nodes_falsenodeids", len(s.falseIDs)}); err != nil {
		return err
	}
	if len(s.missingTrue) != 0 && len(s.missingTrue) != n {
		return fmt.Errorf("nodes_missing_value_tracks_true has %d values, nodes_nodeids %d", len(s.missingTrue), n)
	}
	prefix := "target"
	if s.classifier {
		prefix = "class"
	}
	return sameLengths(prefix+"_nodeids", len(s.leafNodeIDs), attrLen{prefix + "_treeids", len(s.leafTreeIDs)},
		attrLen{prefix + "_ids", len(s.leafTargets)}, attrLen{prefix + "_weights", len(s.leafWeights)})
}

// treeDepths walks every tree from its root without recursion, refusing cycles, and returns
// each tree's depth (the longest root-to-leaf path; a lone leaf has depth 0).
func treeDepths(roots []int32, modes []uint8, trueN, falseN []int32, s *treeSpec) ([]int, error) {
	const (
		white = iota
		grey
		black
	)
	color := make([]uint8, len(modes))
	depth := make([]int32, len(modes))
	out := make([]int, len(roots))
	type frame struct {
		node  int32
		child uint8
	}
	var stack []frame
	// Children resolve within their own tree, so no walk reaches another tree's nodes.
	for t, r := range roots {
		stack = append(stack[:0], frame{node: r})
		color[r] = grey
		for len(stack) > 0 {
			top := &stack[len(stack)-1]
			i := top.node
			if modes[i] == modeLeaf || top.child == 2 {
				if modes[i] != modeLeaf {
					depth[i] = 1 + max(depth[trueN[i]], depth[falseN[i]])
				}
				color[i] = black
				stack = stack[:len(stack)-1]
				continue
			}
			c := trueN[i]
			if top.child == 1 {
				c = falseN[i]
			}
			top.child++
			switch color[c] {
			case grey:
				return nil, fmt.Errorf("tree %d has a cycle through node %d", s.treeIDs[r], s.nodeIDs[c])
			case white:
				color[c] = grey
				stack = append(stack, frame{node: c})
			}
		}
		out[t] = int(depth[r])
	}
	return out, nil
}

// leafWeight is one (target, weight) pair of a leaf.
type leafWeight struct {
	target int32
	w      float64
}

// leafWeights gathers the weights of every leaf, by node index. Weights on branch nodes are
// ignored, as onnxruntime ignores them (old onnxmltools versions wrote some). A SUM or AVERAGE
// ensemble adds up a leaf's weights for the same target.
func (f *forest) leafWeights(s *treeSpec, index map[nodeKey]int32, modes []uint8) ([][]leafWeight, error) {
	weights := make([][]leafWeight, len(modes))
	f.allPositive = true
	classes := map[int64]bool{}
	for k, id := range s.leafNodeIDs {
		i, ok := index[nodeKey{s.leafTreeIDs[k], id}]
		if !ok {
			return nil, fmt.Errorf("a weight is for node %d of tree %d, which does not exist", id, s.leafTreeIDs[k])
		}
		tgt := s.leafTargets[k]
		if tgt < 0 || tgt >= int64(s.nTargets) {
			if s.classifier {
				return nil, fmt.Errorf("a weight is for class %d; there are %d class labels", tgt, s.nTargets)
			}
			return nil, fmt.Errorf("a weight is for target %d; n_targets is %d", tgt, s.nTargets)
		}
		w := s.leafWeights[k]
		f.allPositive = f.allPositive && w >= 0
		classes[tgt] = true
		if modes[i] != modeLeaf {
			continue
		}
		ws := weights[i]
		j := slices.IndexFunc(ws, func(x leafWeight) bool { return x.target == int32(tgt) })
		if j >= 0 && f.agg <= aggAverage {
			ws[j].w += w
			continue
		}
		weights[i] = append(ws, leafWeight{int32(tgt), w})
	}
	f.binary = s.classifier && s.nTargets == 2 && len(classes) == 1 && classes[0]
	return weights, nil
}

// baseValues checks base_values: none, or one per target; the single-column binary classifier
// takes one or two, of which the first is added to its score (as ONNX's reference evaluator
// does).
func (f *forest) baseValues(s *treeSpec) error {
	switch n := len(s.baseValues); {
	case n == 0:
	case f.binary && (n == 1 || n == 2):
		f.base = s.baseValues[:1]
	case n == s.nTargets:
		f.base = s.baseValues
	default:
		return fmt.Errorf("has %d base_values for %d targets or classes", n, s.nTargets)
	}
	return nil
}

// singleTarget is the target every leaf of a tree feeds with at most one weight, or −1 when the
// leaves feed several targets or the ensemble aggregates by MIN or MAX.
func (f *forest) singleTarget(root int32, modes []uint8, trueN, falseN []int32, weights [][]leafWeight) int32 {
	if f.agg > aggAverage {
		return -1
	}
	target := int32(-1)
	single := true
	walkTree(root, modes, trueN, falseN, func(i int32) {
		for _, w := range weights[i] {
			if len(weights[i]) > 1 || (target >= 0 && w.target != target) {
				single = false
			}
			target = w.target
		}
	})
	if !single {
		return -1
	}
	return max(target, 0)
}

// walkTree calls leaf for every leaf reachable from root, once per path (trees are checked for
// cycles before).
func walkTree(root int32, modes []uint8, trueN, falseN []int32, leaf func(int32)) {
	stack := []int32{root}
	seen := map[int32]bool{}
	for len(stack) > 0 {
		i := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if seen[i] {
			continue
		}
		seen[i] = true
		if modes[i] == modeLeaf {
			leaf(i)
			continue
		}
		stack = append(stack, falseN[i], trueN[i])
	}
}

// canonNode is a split rewritten as: x ≤ thresh goes to low, anything else (NaN included) to
// high, unless nanLow sends NaN to low.
type canonNode struct {
	thresh    float64
	low, high int32
	nanLow    bool
}

// canonicalize rewrites every LEQ, LT, GTE and GT split in canonical form, exactly: for every
// x the canonical node picks the child the mode picks.
func canonicalize(s *treeSpec, modes []uint8, trueN, falseN []int32, missing func(int) bool) []canonNode {
	out := make([]canonNode, len(modes))
	for i, m := range modes {
		if m == modeLeaf {
			continue
		}
		t, tr, fa := s.thresholds[i], trueN[i], falseN[i]
		nan := fa
		if missing(i) {
			nan = tr
		}
		var c canonNode
		switch {
		case math.IsNaN(t), m == modeLT && math.IsInf(t, -1), m == modeGT && math.IsInf(t, 1):
			// The condition never holds: every number goes to the false child.
			c = canonNode{thresh: math.Inf(1), low: fa, high: nan}
		case m == modeGTE && math.IsInf(t, -1):
			// The condition always holds for a number.
			c = canonNode{thresh: math.Inf(1), low: tr, high: nan}
		case m == modeLEQ:
			c = canonNode{thresh: t, low: tr, high: fa}
		case m == modeLT:
			c = canonNode{thresh: math.Nextafter(t, math.Inf(-1)), low: tr, high: fa}
		case m == modeGTE:
			c = canonNode{thresh: math.Nextafter(t, math.Inf(-1)), low: fa, high: tr}
		default: // GT
			c = canonNode{thresh: t, low: fa, high: tr}
		}
		c.nanLow = nan == c.low && nan != c.high
		out[i] = c
	}
	return out
}

// down32 is the largest float32 not above t: for every float32 x, x ≤ t exactly when
// x ≤ down32(t).
func down32(t float64) float32 {
	f := float32(t)
	if float64(f) > t {
		f = math.Nextafter32(f, float32(math.Inf(-1)))
	}
	return f
}

// usePerfect tells whether padding every tree to depth leaves memory reasonable.
func usePerfect(depth, trees, nodes int) bool {
	if depth > maxPerfectDeep {
		return false
	}
	slots := trees << depth
	return slots <= perfectBudget && slots <= 8*nodes+1024
}

// layoutBuilder carries what the layouts are built from.
type layoutBuilder struct {
	f             *forest
	roots         []int32
	modes         []uint8
	features      []int64
	trueN, falseN []int32
	weights       [][]leafWeight
	canon         []canonNode
}

// addSlot appends a leaf slot for tree t holding leaf i's weights.
func (b *layoutBuilder) addSlot(t int, i int32) int32 {
	f := b.f
	slot := int32(len(f.slotValue))
	v := 0.0
	if f.single[t] >= 0 && len(b.weights[i]) == 1 {
		v = b.weights[i][0].w
	}
	f.slotValue = append(f.slotValue, v)
	f.slotValue32 = append(f.slotValue32, float32(v))
	if len(f.slotStart) == 0 {
		f.slotStart = append(f.slotStart, 0)
	}
	if f.single[t] < 0 {
		for _, w := range b.weights[i] {
			f.spanTgt = append(f.spanTgt, w.target)
			f.spanW = append(f.spanW, w.w)
			f.spanW32 = append(f.spanW32, float32(w.w))
		}
	}
	f.slotStart = append(f.slotStart, int32(len(f.spanTgt)))
	return slot
}

func buildPerfect[T float32 | float64](b *layoutBuilder, depth int, conv func(float64) T) *perfectLayout[T] {
	f := b.f
	size := 1 << depth
	l := &perfectLayout[T]{
		depth:  depth,
		nodes:  make([]pnode[T], len(b.roots)*size),
		nanLow: make([]bool, len(b.roots)*size),
	}
	f.slotsOf = make([]int32, 0, len(b.roots)+1)
	type pos struct {
		p    int // heap position within the tree
		node int32
	}
	var stack []pos
	slotOf := make([]int32, size)
	for t, r := range b.roots {
		f.slotsOf = append(f.slotsOf, int32(len(f.slotValue)))
		base := t * size
		stack = append(stack[:0], pos{1, r})
		for len(stack) > 0 {
			top := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			if top.p >= size {
				slotOf[top.p-size] = top.node
				continue
			}
			i := top.node
			low, high := i, i // a leaf above the bottom fills both halves below it
			if b.modes[i] != modeLeaf {
				c := b.canon[i]
				l.nodes[base+top.p] = pnode[T]{thresh: conv(c.thresh), offset: int32(b.features[i]) * treeRowBlock}
				l.nanLow[base+top.p] = c.nanLow
				low, high = c.low, c.high
			}
			stack = append(stack, pos{2*top.p + 1, high}, pos{2 * top.p, low})
		}
		for _, i := range slotOf {
			b.addSlot(t, i)
		}
	}
	f.slotsOf = append(f.slotsOf, int32(len(f.slotValue)))
	return l
}

// generalOrder places the nodes reachable from each root in depth-first order, each once even
// when two parents share it, and gives each reachable leaf a slot. It returns the nodes in
// their new order, every node's new position (−1 if unreachable), each tree's root position
// and each leaf's slot.
func (b *layoutBuilder) generalOrder() (order, pos, roots, slot []int32) {
	f := b.f
	n := len(b.modes)
	pos = make([]int32, n)
	slot = make([]int32, n)
	for i := range pos {
		pos[i], slot[i] = -1, -1
	}
	f.slotsOf = make([]int32, 0, len(b.roots)+1)
	roots = make([]int32, len(b.roots))
	var stack []int32
	for t, r := range b.roots {
		f.slotsOf = append(f.slotsOf, int32(len(f.slotValue)))
		roots[t] = int32(len(order))
		stack = append(stack[:0], r)
		for len(stack) > 0 {
			i := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			if pos[i] >= 0 {
				continue
			}
			pos[i] = int32(len(order))
			order = append(order, i)
			if b.modes[i] == modeLeaf {
				slot[i] = b.addSlot(t, i)
				continue
			}
			stack = append(stack, b.falseN[i], b.trueN[i])
		}
	}
	f.slotsOf = append(f.slotsOf, int32(len(f.slotValue)))
	return order, pos, roots, slot
}

func buildGeneral[T float32 | float64](b *layoutBuilder, conv func(float64) T) *generalLayout[T] {
	order, pos, roots, slot := b.generalOrder()
	m := len(order)
	l := &generalLayout[T]{root: roots, feature: make([]int32, m), thresh: make([]T, m),
		low: make([]int32, m), high: make([]int32, m), nanLow: make([]bool, m)}
	for p, i := range order {
		if b.modes[i] == modeLeaf {
			l.feature[p], l.low[p] = -1, slot[i]
			continue
		}
		c := b.canon[i]
		l.feature[p], l.thresh[p], l.nanLow[p] = int32(b.features[i]), conv(c.thresh), c.nanLow
		l.low[p], l.high[p] = pos[c.low], pos[c.high]
	}
	return l
}

// buildModal keeps every node's own mode, for ensembles with EQ or NEQ splits.
func (b *layoutBuilder) buildModal(s *treeSpec, missing func(int) bool) {
	order, pos, roots, slot := b.generalOrder()
	m := len(order)
	l := &modalLayout{root: roots, mode: make([]uint8, m), feature: make([]int32, m),
		thresh: make([]float64, m), trueN: make([]int32, m), falseN: make([]int32, m),
		missing: make([]bool, m)}
	for p, i := range order {
		l.mode[p] = b.modes[i]
		if b.modes[i] == modeLeaf {
			l.feature[p], l.trueN[p] = -1, slot[i]
			continue
		}
		l.feature[p], l.thresh[p], l.missing[p] = int32(b.features[i]), s.thresholds[i], missing(int(i))
		l.trueN[p], l.falseN[p] = pos[b.trueN[i]], pos[b.falseN[i]]
	}
	b.f.modal = l
}
