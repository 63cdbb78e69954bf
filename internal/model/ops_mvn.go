package model

// MeanVarianceNormalization: (X − mean) / (std + 1e-9) over the given axes (by default 0, 2,
// 3: per channel), with the variance computed as E[X²] − E[X]², as ONNX's function body does.

import (
	"fmt"
	"math"
)

func init() {
	register(opImpl{domain: domainONNX, name: "MeanVarianceNormalization", minOpset: 9, maxOpset: maxOpsetONNX, compile: compileMVN})
}

func compileMVN(n *nodeCtx) (kernel, error) {
	if err := n.arity(1, 1, 1, 1); err != nil {
		return nil, err
	}
	if err := n.needTypes(0, Float32, Float64); err != nil {
		return nil, err
	}
	in := n.shape(0)
	axes, ok, err := n.attrInts("axes")
	if err != nil {
		return nil, err
	}
	if !ok {
		axes = []int64{0, 2, 3}
	}
	mask, err := reduceMask(axes, len(in), false)
	if err != nil {
		return nil, err
	}
	n.setOutTensor(0, n.dtype(0), in)
	return kernelFunc(func(x *exec, in, out []*Tensor) error {
		t, o := in[0], out[0]
		if len(t.Shape) != len(mask) {
			return fmt.Errorf("input of shape %v, axes for rank %d", t.Shape, len(mask))
		}
		// group maps each element to its statistics: its offset in the shape with the
		// normalised axes dropped.
		var kb, gb [maxRank]int
		kept := kb[:len(t.Shape)]
		for d, s := range t.Shape {
			kept[d] = s
			if mask[d] {
				kept[d] = 1
			}
		}
		gs := strides(&gb, kept)
		groups := product(kept)
		stats := x.scratch(0)
		if err := stats.reset(Float64, 3*groups); err != nil {
			return err
		}
		clear(stats.Float64)
		sum, sq, cnt := stats.Float64[:groups], stats.Float64[groups:2*groups], stats.Float64[2*groups:]
		vals := x.scratch(1)
		if err := castInto(vals, t, Float64); err != nil {
			return err
		}
		v := vals.Float64[:t.Len()]
		group := func(i int) int {
			g := 0
			for d := len(t.Shape) - 1; d >= 0; d-- {
				c := i % t.Shape[d]
				i /= t.Shape[d]
				if !mask[d] {
					g += c * gs[d]
				}
			}
			return g
		}
		for i, f := range v {
			g := group(i)
			sum[g] += f
			sq[g] += f * f
			cnt[g]++
		}
		for g := range groups {
			mean := sum[g] / cnt[g]
			sum[g] = mean
			sq[g] = math.Sqrt(max(sq[g]/cnt[g]-mean*mean, 0)) + 1e-9
		}
		for i := range v {
			g := group(i)
			v[i] = (v[i] - sum[g]) / sq[g]
		}
		return castInto(o, vals, t.DType)
	}), nil
}
