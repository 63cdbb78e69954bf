package model

// Loss functions: NegativeLogLikelihoodLoss and SoftmaxCrossEntropyLoss (opset 12 and later).
//
// Both take scores of shape [N, C, d1, ..., dk] and class indices of shape [N, d1, ..., dk].
// Element i loses -w[t]·x[n, t, d] where t is its target class and w the optional per-class
// weights (1 without them); a target equal to ignore_index loses nothing and weighs 0.
// "mean" divides the sum by the sum of the weights of the elements that count, "sum" adds,
// "none" keeps the loss per element. SoftmaxCrossEntropyLoss applies a log-softmax along the
// class axis first and may also output it.

import (
	"fmt"
	"slices"
)

func init() {
	register(
		opImpl{domain: domainONNX, name: "NegativeLogLikelihoodLoss", minOpset: 12, maxOpset: maxOpsetONNX,
			compile: func(n *nodeCtx) (kernel, error) { return compileLoss(n, false) }},
		opImpl{domain: domainONNX, name: "SoftmaxCrossEntropyLoss", minOpset: 12, maxOpset: maxOpsetONNX,
			compile: func(n *nodeCtx) (kernel, error) { return compileLoss(n, true) }},
	)
}

type lossReduction uint8

const (
	lossMean lossReduction = iota
	lossSum
	lossNone
)

type lossKernel struct {
	softmax   bool
	reduction lossReduction
	ignore    int64
	hasIgnore bool
}

func compileLoss(n *nodeCtx, softmax bool) (kernel, error) {
	maxOut := 1
	if softmax {
		maxOut = 2
	}
	if err := n.arity(2, 3, 1, maxOut); err != nil {
		return nil, err
	}
	if err := n.needTypes(0, Float32, Float64); err != nil {
		return nil, err
	}
	if err := n.needTypes(1, Int32, Int64); err != nil {
		return nil, err
	}
	if err := n.sameType(2); err != nil {
		return nil, err
	}
	k := &lossKernel{softmax: softmax}
	red, err := n.attrString("reduction", "mean")
	if err != nil {
		return nil, err
	}
	switch red {
	case "mean":
		k.reduction = lossMean
	case "sum":
		k.reduction = lossSum
	case "none":
		k.reduction = lossNone
	default:
		return nil, fmt.Errorf("reduction %q is not one of none, sum, mean", red)
	}
	k.hasIgnore = n.hasAttr("ignore_index")
	if k.ignore, err = n.attrInt("ignore_index", 0); err != nil {
		return nil, err
	}
	scores, target := n.shape(0), n.shape(1)
	if len(scores) < 2 {
		return nil, fmt.Errorf("input of shape %s has no class axis", shapeString(scores))
	}
	if len(target) != len(scores)-1 {
		return nil, fmt.Errorf("target of shape %s does not match input of shape %s", shapeString(target), shapeString(scores))
	}
	if n.has(2) {
		if w := n.shape(2); len(w) != 1 {
			return nil, fmt.Errorf("weight of shape %s is not one value per class", shapeString(w))
		}
	}
	if k.reduction == lossNone {
		n.setOutTensor(0, n.dtype(0), slices.Clone(target))
	} else {
		n.setOutTensor(0, n.dtype(0), []int{})
	}
	n.setOutTensor(1, n.dtype(0), scores)
	return k, nil
}

func (k *lossKernel) run(x *exec, in, out []*Tensor) error {
	scores, target := in[0], in[1]
	s := scores.Shape
	if len(target.Shape) != len(s)-1 || target.Shape[0] != s[0] || !slices.Equal(target.Shape[1:], s[2:]) {
		return fmt.Errorf("target of shape %v does not match input of shape %v", target.Shape, s)
	}
	classes := s[1]
	var weights []float64
	if len(in) > 2 && in[2] != nil {
		w := x.scratch(0)
		if err := castInto(w, in[2], Float64); err != nil {
			return err
		}
		if w.Len() != classes {
			return fmt.Errorf("weight has %d values for %d classes", w.Len(), classes)
		}
		weights = w.Float64
	}
	ts := x.scratch(1)
	if err := castInto(ts, target, Int64); err != nil {
		return err
	}
	labels := ts.Int64[:target.Len()]
	for _, t := range labels {
		if (t < 0 || t >= int64(classes)) && !(k.hasIgnore && t == k.ignore) {
			return fmt.Errorf("target class %d is out of range for %d classes", t, classes)
		}
	}
	logp := scores
	if k.softmax {
		logp = x.scratch(2)
		if len(out) > 1 {
			logp = out[1]
		}
		if err := logp.reset(scores.DType, s...); err != nil {
			return err
		}
		if scores.Len() > 0 {
			outer, inner := s[0], product(s[2:])
			switch scores.DType {
			case Float32:
				softmaxT(softmaxLog, data[float32](logp), data[float32](scores), outer, classes, inner)
			case Float64:
				softmaxT(softmaxLog, data[float64](logp), data[float64](scores), outer, classes, inner)
			}
		}
	}
	o := out[0]
	var err error
	if k.reduction == lossNone {
		err = o.reset(scores.DType, target.Shape...)
	} else {
		err = o.reset(scores.DType)
	}
	if err != nil {
		return err
	}
	switch scores.DType {
	case Float32:
		lossT(k, data[float32](o), data[float32](logp), labels, weights, classes, product(s[2:]))
	case Float64:
		lossT(k, data[float64](o), data[float64](logp), labels, weights, classes, product(s[2:]))
	}
	return nil
}

// lossT computes the loss from log-probabilities lp of shape [N, C, inner]; sums accumulate
// in float64.
func lossT[T float32 | float64](k *lossKernel, o, lp []T, labels []int64, weights []float64, classes, inner int) {
	var sum, weightSum float64
	for i, t := range labels {
		if k.hasIgnore && t == k.ignore {
			if k.reduction == lossNone {
				o[i] = 0
			}
			continue
		}
		w := 1.0
		if weights != nil {
			w = weights[t]
		}
		b, d := i/inner, i%inner
		l := -float64(lp[(b*classes+int(t))*inner+d]) * w
		if k.reduction == lossNone {
			o[i] = T(l)
		}
		sum += l
		weightSum += w
	}
	switch k.reduction {
	case lossSum:
		o[0] = T(sum)
	case lossMean:
		o[0] = T(sum / weightSum)
	}
}
