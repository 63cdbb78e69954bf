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

func (k *treeKernel) rowLocal(batch int, in, out []valueType) bool { return mlRows(batch, in, out) }
