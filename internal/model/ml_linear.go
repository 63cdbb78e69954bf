package model

import "fmt"

// LinearClassifier and LinearRegressor (ai.onnx.ml 1): scores = X·Wᵀ + b per row, then the
// post transform; the classifier's label is the class with the highest score. A classifier with
// one coefficient row and two labels is the binary form: its score s stands for the second
// class and the first gets −s before the transform, as ONNX's reference evaluator does (scikit-
// learn's converter writes two rows instead, −w and w, which needs no special case).

func init() {
	register(
		opImpl{domain: domainML, name: "LinearClassifier", minOpset: 1, maxOpset: maxOpsetML, compile: compileLinearClassifier},
		opImpl{domain: domainML, name: "LinearRegressor", minOpset: 1, maxOpset: maxOpsetML, compile: compileLinearRegressor},
	)
}

// linear is a compiled coefficient matrix: targets rows of features weights, and intercepts.
type linear struct {
	w        []float64 // targets × features
	b        []float64 // targets
	targets  int
	features int
	post     postTransform
}

// readLinear reads coefficients and intercepts for targets rows (targets ≤ 0: as many rows as
// intercepts) against an input of cols columns (negative when known only at run time).
func readLinear(n *nodeCtx, targets, cols int) (*linear, error) {
	coef, ok, err := n.attrFloats("coefficients")
	if err != nil {
		return nil, err
	}
	if !ok || len(coef) == 0 {
		return nil, fmt.Errorf("has no coefficients")
	}
	icpt, hasIcpt, err := n.attrFloats("intercepts")
	if err != nil {
		return nil, err
	}
	if targets <= 0 {
		if !hasIcpt {
			return nil, fmt.Errorf("has no intercepts, so no number of classes")
		}
		targets = len(icpt)
	}
	if targets < 1 || len(coef)%targets != 0 {
		return nil, fmt.Errorf("has %d coefficients, not a whole number of rows for %d targets or classes", len(coef), targets)
	}
	l := &linear{targets: targets, features: len(coef) / targets, w: make([]float64, len(coef)), b: make([]float64, targets)}
	if cols >= 0 && cols != l.features {
		return nil, fmt.Errorf("has %d coefficients per target or class, the input %d features", l.features, cols)
	}
	for i, v := range coef {
		l.w[i] = float64(v)
	}
	switch {
	case !hasIcpt:
	case len(icpt) == targets:
		for i, v := range icpt {
			l.b[i] = float64(v)
		}
	default:
		return nil, fmt.Errorf("has %d intercepts for %d targets or classes", len(icpt), targets)
	}
	post, err := n.attrString("post_transform", "NONE")
	if err != nil {
		return nil, err
	}
	var okPost bool
	if l.post, okPost = postNames[post]; !okPost {
		return nil, unsupported("post_transform %q is not one of NONE, LOGISTIC, SOFTMAX, SOFTMAX_ZERO, PROBIT", post)
	}
	return l, nil
}

// scores computes rows × targets scores of X into sc.
func (l *linear) scores(X *Tensor, rows int, sc []float64) error {
	cols := X.Shape[len(X.Shape)-1]
	if cols != l.features {
		return fmt.Errorf("the model has %d coefficients per target, the input %d features", l.features, cols)
	}
	switch X.DType {
	case Float32:
		linearScores(data[float32](X), l, rows, sc)
	case Float64:
		linearScores(data[float64](X), l, rows, sc)
	case Int64:
		linearScores(data[int64](X), l, rows, sc)
	case Int32:
		linearScores(data[int32](X), l, rows, sc)
	default:
		return fmt.Errorf("input type %s", X.DType)
	}
	return nil
}

func linearScores[T float32 | float64 | int64 | int32](x []T, l *linear, rows int, sc []float64) {
	f := l.features
	for r := range rows {
		xr := x[r*f : (r+1)*f]
		for k := range l.targets {
			w := l.w[k*f : (k+1)*f]
			s := l.b[k]
			for j, v := range xr {
				s += float64(v) * w[j]
			}
			sc[r*l.targets+k] = s
		}
	}
}

func compileLinearClassifier(n *nodeCtx) (kernel, error) {
	if err := n.arity(1, 1, 2, 2); err != nil {
		return nil, err
	}
	if err := n.needTypes(0, Float32, Float64, Int64, Int32); err != nil {
		return nil, err
	}
	if err := checkAttrNames(n, "LinearClassifier", n.opset, []string{"coefficients", "intercepts", "multi_class",
		"post_transform", "classlabels_ints", "classlabels_strings"}, nil); err != nil {
		return nil, err
	}
	rows, cols, err := rowsCols(n.shape(0))
	if err != nil {
		return nil, err
	}
	l, err := readLinear(n, 0, cols)
	if err != nil {
		return nil, err
	}
	labels, err := readClassLabels(n, "classlabels_ints", "classlabels_strings")
	if err != nil {
		return nil, err
	}
	binary := l.targets == 1 && labels.len() == 2
	if !binary && labels.len() != l.targets {
		return nil, fmt.Errorf("has %d class labels for %d coefficient rows", labels.len(), l.targets)
	}
	c := labels.len()
	n.setOutTensor(0, labels.dtype(), []int{rows})
	n.setOutTensor(1, Float32, []int{rows, c})
	return mlRowKernel(func(x *exec, in, out []*Tensor) error {
		X := in[0]
		rows := featureRows(X)
		sc, idx := x.scratch(0), x.scratch(1)
		if err := sc.reset(Float64, rows*l.targets); err != nil {
			return err
		}
		if err := l.scores(X, rows, sc.Float64); err != nil {
			return err
		}
		if err := out[1].reset(Float32, rows, c); err != nil {
			return err
		}
		if err := idx.reset(Int32, rows); err != nil {
			return err
		}
		var pair [2]float64
		for r := range rows {
			row := sc.Float64[r*l.targets : (r+1)*l.targets]
			if binary {
				pair = [2]float64{-row[0], row[0]}
				row = pair[:]
			}
			l.post.apply(row)
			best := 0
			for k, v := range row {
				out[1].Float32[r*c+k] = float32(v)
				if v > row[best] {
					best = k
				}
			}
			idx.Int32[r] = int32(best)
		}
		return labels.write(out[0], idx.Int32)
	}), nil
}

func compileLinearRegressor(n *nodeCtx) (kernel, error) {
	if err := n.arity(1, 1, 1, 1); err != nil {
		return nil, err
	}
	if err := n.needTypes(0, Float32, Float64, Int64, Int32); err != nil {
		return nil, err
	}
	if err := checkAttrNames(n, "LinearRegressor", n.opset, []string{"coefficients", "intercepts", "targets", "post_transform"}, nil); err != nil {
		return nil, err
	}
	rows, cols, err := rowsCols(n.shape(0))
	if err != nil {
		return nil, err
	}
	targets, err := n.attrInt("targets", 1)
	if err != nil {
		return nil, err
	}
	if targets < 1 || targets > 1<<20 {
		return nil, fmt.Errorf("targets is %d", targets)
	}
	l, err := readLinear(n, int(targets), cols)
	if err != nil {
		return nil, err
	}
	n.setOutTensor(0, Float32, []int{rows, l.targets})
	return mlRowKernel(func(x *exec, in, out []*Tensor) error {
		X := in[0]
		rows := featureRows(X)
		sc := x.scratch(0)
		if err := sc.reset(Float64, rows*l.targets); err != nil {
			return err
		}
		if err := l.scores(X, rows, sc.Float64); err != nil {
			return err
		}
		if err := out[0].reset(Float32, rows, l.targets); err != nil {
			return err
		}
		for r := range rows {
			row := sc.Float64[r*l.targets : (r+1)*l.targets]
			l.post.apply(row)
			for k, v := range row {
				out[0].Float32[r*l.targets+k] = float32(v)
			}
		}
		return nil
	}), nil
}
