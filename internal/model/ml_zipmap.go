package model

import "fmt"

// ZipMap (ai.onnx.ml 1) turns each row of class probabilities into a map from class label to
// probability: seq(map(int64|string, float)). The executor keeps a sequence of maps that share
// their keys as one tensor: the probabilities [N, C] (a view of the input, no copy) with Keys,
// the C labels, known at load, so Metadata can publish them and a server return the
// probabilities with their labels.

func init() {
	register(opImpl{domain: domainML, name: "ZipMap", minOpset: 1, maxOpset: maxOpsetML, compile: compileZipMap})
}

func compileZipMap(n *nodeCtx) (kernel, error) {
	if err := n.arity(1, 1, 1, 1); err != nil {
		return nil, err
	}
	if err := n.needTypes(0, Float32); err != nil {
		return nil, err
	}
	if err := checkAttrNames(n, "ZipMap", n.opset, []string{"classlabels_int64s", "classlabels_strings"}, nil); err != nil {
		return nil, err
	}
	labels, err := readClassLabels(n, "classlabels_int64s", "classlabels_strings")
	if err != nil {
		return nil, err
	}
	keys := labels.tensor()
	c := labels.len()
	rows, cols, err := rowsCols(n.shape(0))
	if err != nil {
		return nil, err
	}
	if cols >= 0 && cols != c {
		return nil, fmt.Errorf("has %d class labels for %d probabilities per row", c, cols)
	}
	n.setOut(0, valueType{kind: kindSeqMap, dtype: Float32, shape: []int{rows, c}, keyType: keys.DType, keys: keys})
	n.setView(0)
	return kernelFunc(func(_ *exec, in, out []*Tensor) error {
		x := in[0]
		rows := featureRows(x)
		if last := x.Shape[len(x.Shape)-1]; last != c {
			return fmt.Errorf("ZipMap has %d class labels, the input %d probabilities per row", c, last)
		}
		out[0].view(x, []int{rows, c})
		out[0].Keys = keys
		return nil
	}), nil
}

// readClassLabels reads a classifier's labels from its INT64 or STRING attribute (exactly one).
func readClassLabels(a attrReader, intsName, stringsName string) (classLabels, error) {
	var labels classLabels
	ints, hasInts, err := a.attrInts(intsName)
	if err != nil {
		return labels, err
	}
	strs, hasStrs, err := a.attrStrings(stringsName)
	if err != nil {
		return labels, err
	}
	switch {
	case hasInts && hasStrs:
		return labels, fmt.Errorf("has both %s and %s", intsName, stringsName)
	case hasStrs:
		labels.strings = strs
	default:
		labels.ints = ints
	}
	if labels.len() == 0 {
		return labels, fmt.Errorf("has no class labels")
	}
	return labels, nil
}

// tensor is the labels as a 1-D tensor.
func (c classLabels) tensor() *Tensor {
	if c.strings != nil {
		return NewTensor([]int{len(c.strings)}, c.strings)
	}
	return NewTensor([]int{len(c.ints)}, c.ints)
}
