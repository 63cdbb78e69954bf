package model

import "fmt"

// The node context as the ai.onnx.ml operators read attributes (attrReader), beyond what
// op.go's getters offer.

var _ attrReader = (*nodeCtx)(nil)

// attrFloat64s reads a FLOAT or DOUBLE tensor attribute (the *_as_tensor attributes of
// ai.onnx.ml opset 3) widened to float64.
func (n *nodeCtx) attrFloat64s(name string) (v []float64, ok bool, err error) {
	t, err := n.attrTensor(name)
	if t == nil || err != nil {
		return nil, false, err
	}
	switch t.DType {
	case Float64:
		return data[float64](t), true, nil
	case Float32:
		f := data[float32](t)
		v = make([]float64, len(f))
		for i, x := range f {
			v[i] = float64(x)
		}
		return v, true, nil
	}
	return nil, false, fmt.Errorf("attribute %s has element type %s, want float or double", name, t.DType)
}

// attrNames lists the attributes the node sets.
func (n *nodeCtx) attrNames() []string {
	out := make([]string, len(n.node.Attributes))
	for i, a := range n.node.Attributes {
		out[i] = a.Name
	}
	return out
}

// mlRows is the rowLocal rule of the ml operators but ZipMap: each output row comes from the same
// row of input 0 (and of any other batch-major input), the other inputs being parameters. Plans
// of such steps run large batches in chunks.
func mlRows(batch int, in, out []valueType) bool {
	if !batchMajor(in[0], batch) {
		return false
	}
	for _, o := range out {
		if !batchMajor(o, batch) {
			return false
		}
	}
	for _, t := range in[1:] {
		if !batchMajor(t, batch) && !batchFree(t, batch) {
			return false
		}
	}
	return true
}

func mlRowKernel(f kernelFunc) kernel { return rowFunc{kernelFunc: f, local: mlRows} }

// featureRows is how many rows an ml operator's input holds: [N, F] is N rows, [F] one.
func featureRows(X *Tensor) int {
	if len(X.Shape) == 2 {
		return X.Shape[0]
	}
	return 1
}

// attrLen is the length of one of a node's list attributes, for sameLengths.
type attrLen struct {
	name string
	n    int
}

// sameLengths refuses the first list whose length is not n, the length of the list named ref:
// parallel attribute lists (one value per node, per leaf) must line up.
func sameLengths(ref string, n int, lists ...attrLen) error {
	for _, l := range lists {
		if l.n != n {
			return fmt.Errorf("%s has %d values, %s %d", l.name, l.n, ref, n)
		}
	}
	return nil
}

func (k *treeKernel) rowLocal(batch int, in, out []valueType) bool { return mlRows(batch, in, out) }
