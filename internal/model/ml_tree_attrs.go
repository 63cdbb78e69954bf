package model

import (
	"fmt"
	"slices"
)

// attrReader is how the ml operators read a node's attributes: the executor's node context
// provides it.
type attrReader interface {
	attrInts(name string) ([]int64, bool, error)
	attrFloats(name string) ([]float32, bool, error)
	attrStrings(name string) ([]string, bool, error)
	attrString(name, def string) (string, error)
	attrInt(name string, def int64) (int64, error)
	// attrFloat64s reads a FLOAT or DOUBLE tensor attribute (the *_as_tensor attributes of
	// ai.onnx.ml opset 3) widened to float64; ok is false when absent.
	attrFloat64s(name string) (v []float64, ok bool, err error)
	attrNames() []string
}

// classLabels are a classifier's labels: INT64 or STRING.
type classLabels struct {
	ints    []int64
	strings []string
}

func (c classLabels) len() int { return max(len(c.ints), len(c.strings)) }

// Attributes of TreeEnsembleClassifier and TreeEnsembleRegressor, by opset.
var (
	treeNodeAttrs = []string{"nodes_falsenodeids", "nodes_featureids", "nodes_hitrates",
		"nodes_missing_value_tracks_true", "nodes_modes", "nodes_nodeids", "nodes_treeids",
		"nodes_truenodeids", "nodes_values", "base_values", "post_transform"}
	treeTensorAttrs     = []string{"base_values_as_tensor", "nodes_hitrates_as_tensor", "nodes_values_as_tensor"}
	treeClassifierAttrs = []string{"class_ids", "class_nodeids", "class_treeids", "class_weights",
		"classlabels_int64s", "classlabels_strings"}
	treeRegressorAttrs = []string{"aggregate_function", "n_targets", "target_ids", "target_nodeids",
		"target_treeids", "target_weights"}
)

// checkAttrNames refuses attributes the operator does not define at the model's opset.
func checkAttrNames(a attrReader, op string, opset int64, known []string, since3 []string) error {
	for _, name := range a.attrNames() {
		if slices.Contains(known, name) {
			continue
		}
		if slices.Contains(since3, name) {
			if opset < 3 {
				return fmt.Errorf("attribute %s needs ai.onnx.ml opset 3, the model imports %d", name, opset)
			}
			continue
		}
		return unsupported("%s has no attribute %s", op, name)
	}
	return nil
}

// decodeTreeSpec reads a TreeEnsembleClassifier (classifier) or TreeEnsembleRegressor node.
func decodeTreeSpec(a attrReader, opset int64, classifier bool) (*treeSpec, classLabels, error) {
	s := &treeSpec{classifier: classifier}
	var labels classLabels
	op, prefix, known, since3 := "TreeEnsembleRegressor", "target", treeRegressorAttrs, []string{"target_weights_as_tensor"}
	if classifier {
		op, prefix, known, since3 = "TreeEnsembleClassifier", "class", treeClassifierAttrs, []string{"class_weights_as_tensor"}
	}
	if err := checkAttrNames(a, op, opset, append(slices.Clone(treeNodeAttrs), known...), append(slices.Clone(treeTensorAttrs), since3...)); err != nil {
		return nil, labels, err
	}
	ints := []struct {
		name string
		dst  *[]int64
	}{
		{"nodes_treeids", &s.treeIDs}, {"nodes_nodeids", &s.nodeIDs}, {"nodes_featureids", &s.featureIDs},
		{"nodes_truenodeids", &s.trueIDs}, {"nodes_falsenodeids", &s.falseIDs},
		{"nodes_missing_value_tracks_true", &s.missingTrue},
		{prefix + "_treeids", &s.leafTreeIDs}, {prefix + "_nodeids", &s.leafNodeIDs}, {prefix + "_ids", &s.leafTargets},
	}
	for _, x := range ints {
		v, _, err := a.attrInts(x.name)
		if err != nil {
			return nil, labels, err
		}
		*x.dst = v
	}
	var err error
	if s.modes, _, err = a.attrStrings("nodes_modes"); err != nil {
		return nil, labels, err
	}
	if s.thresholds, err = floatsOrTensor(a, "nodes_values"); err != nil {
		return nil, labels, err
	}
	if s.leafWeights, err = floatsOrTensor(a, prefix+"_weights"); err != nil {
		return nil, labels, err
	}
	if s.baseValues, err = floatsOrTensor(a, "base_values"); err != nil {
		return nil, labels, err
	}
	if s.post, err = a.attrString("post_transform", "NONE"); err != nil {
		return nil, labels, err
	}
	if classifier {
		s.aggregate = "SUM"
		if labels, err = readClassLabels(a, "classlabels_int64s", "classlabels_strings"); err != nil {
			return nil, labels, err
		}
		s.nTargets = labels.len()
		return s, labels, nil
	}
	if s.aggregate, err = a.attrString("aggregate_function", "SUM"); err != nil {
		return nil, labels, err
	}
	n, err := a.attrInt("n_targets", 0)
	if err != nil {
		return nil, labels, err
	}
	if n < 1 || n > 1<<20 {
		return nil, labels, fmt.Errorf("n_targets is %d", n)
	}
	s.nTargets = int(n)
	return s, labels, nil
}

// floatsOrTensor reads a FLOATS attribute or its *_as_tensor twin, which may not both be set.
func floatsOrTensor(a attrReader, name string) ([]float64, error) {
	f, hasF, err := a.attrFloats(name)
	if err != nil {
		return nil, err
	}
	t, hasT, err := a.attrFloat64s(name + "_as_tensor")
	if err != nil {
		return nil, err
	}
	if hasF && hasT {
		return nil, fmt.Errorf("has both %s and %s_as_tensor", name, name)
	}
	if hasT {
		return t, nil
	}
	v := make([]float64, len(f))
	for i, x := range f {
		v[i] = float64(x)
	}
	return v, nil
}
