package model

// TreeEnsembleClassifier and TreeEnsembleRegressor (ai.onnx.ml opsets 1 to 4; opset 5
// deprecates them for TreeEnsemble): the executor's side of ml_tree.go's forests.

func init() {
	register(
		opImpl{domain: domainML, name: "TreeEnsembleClassifier", minOpset: 1, maxOpset: 4, compile: compileTreeOp(true)},
		opImpl{domain: domainML, name: "TreeEnsembleRegressor", minOpset: 1, maxOpset: 4, compile: compileTreeOp(false)},
	)
}

func compileTreeOp(classifier bool) func(n *nodeCtx) (kernel, error) {
	return func(n *nodeCtx) (kernel, error) {
		outs := 1
		if classifier {
			outs = 2
		}
		if err := n.arity(1, 1, outs, outs); err != nil {
			return nil, err
		}
		if err := n.needTypes(0, Float32, Float64, Int64, Int32); err != nil {
			return nil, err
		}
		rows, cols, err := rowsCols(n.shape(0))
		if err != nil {
			return nil, err
		}
		spec, labels, err := decodeTreeSpec(n, n.opset, classifier)
		if err != nil {
			return nil, err
		}
		f, err := compileForest(spec, cols, n.dtype(0) == Float64)
		if err != nil {
			return nil, err
		}
		k := &treeKernel{f: f, labels: labels}
		if classifier {
			n.setOutTensor(0, labels.dtype(), []int{rows})
			n.setOutTensor(1, Float32, []int{rows, f.nTargets})
		} else {
			n.setOutTensor(0, Float32, []int{rows, f.nTargets})
		}
		return k, nil
	}
}

// rowsCols reads the rows and columns of a TreeEnsemble or linear model input: [N, F], or [F]
// for one row. Either may be a symbol (negative) known only at run time.
func rowsCols(shape []int) (rows, cols int, err error) {
	switch len(shape) {
	case 1:
		return 1, shape[0], nil
	case 2:
		return shape[0], shape[1], nil
	}
	return 0, 0, unsupported("input has rank %d; it takes [N, F] or [F]", len(shape))
}

// dtype is the type of the label output.
func (c classLabels) dtype() DType {
	if c.strings != nil {
		return String
	}
	return Int64
}

type treeKernel struct {
	f      *forest
	labels classLabels
	out64  bool // a DOUBLE output (TreeEnsemble with DOUBLE input)
}

func (k *treeKernel) run(x *exec, in, out []*Tensor) error {
	X := in[0]
	rows, cols := 1, X.Shape[0]
	if len(X.Shape) == 2 {
		rows, cols = X.Shape[0], X.Shape[1]
	}
	f := k.f
	// The scratch tensors keep the forest's buffers from run to run.
	// (scratch 0 keeps both score buffers, in its Float64 and Float32 fields.)
	sc, has, b32, b64, row := x.scratch(0), x.scratch(1), x.scratch(2), x.scratch(3), x.scratch(6)
	s := treeScratch{scores: sc.Float64, scores32: sc.Float32, has: has.Bool, block32: b32.Float32,
		block64: b64.Float64, row: row.Float64}
	defer func() { row.Float64 = s.row }()
	var err error
	switch X.DType {
	case Float32:
		err = f.scoreFloat32(data[float32](X), rows, cols, &s)
	case Float64:
		err = f.scoreFloat64(data[float64](X), rows, cols, &s)
	default:
		// Integers are compared as float32, as onnxruntime compares them.
		conv := x.scratch(4)
		if err = castInto(conv, X, Float32); err == nil {
			err = f.scoreFloat32(data[float32](conv), rows, cols, &s)
		}
	}
	sc.Float64, sc.Float32, has.Bool, b32.Float32, b64.Float64 = s.scores, s.scores32, s.has, s.block32, s.block64
	if err != nil {
		return err
	}
	if k.out64 {
		if err := out[0].reset(Float64, rows, f.nTargets); err != nil {
			return err
		}
		regressInto(f, &s, rows, data[float64](out[0]))
		return nil
	}
	if !f.classifier {
		if err := out[0].reset(Float32, rows, f.nTargets); err != nil {
			return err
		}
		f.regress(&s, rows, data[float32](out[0]))
		return nil
	}
	idx := x.scratch(5)
	if err := idx.reset(Int32, rows); err != nil {
		return err
	}
	if err := out[1].reset(Float32, rows, f.nTargets); err != nil {
		return err
	}
	f.classify(&s, rows, data[float32](out[1]), data[int32](idx))
	return k.labels.write(out[0], data[int32](idx))
}

// write sets out to the labels of the class indexes idx.
func (c classLabels) write(out *Tensor, idx []int32) error {
	if err := out.reset(c.dtype(), len(idx)); err != nil {
		return err
	}
	if c.strings != nil {
		for r, i := range idx {
			out.String[r] = c.strings[i]
		}
		return nil
	}
	for r, i := range idx {
		out.Int64[r] = c.ints[i]
	}
	return nil
}
