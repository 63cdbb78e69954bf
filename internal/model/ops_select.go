package model

// Operators that rearrange or select elements: DepthToSpace, SpaceToDepth, Compress,
// ReverseSequence, NonZero, OneHot.

import (
	"errors"
	"fmt"
	"math"
	"slices"
)

func init() {
	register(
		opImpl{domain: domainONNX, name: "DepthToSpace", minOpset: 1, maxOpset: maxOpsetONNX, compile: compileDepthToSpace},
		opImpl{domain: domainONNX, name: "SpaceToDepth", minOpset: 1, maxOpset: maxOpsetONNX, compile: compileDepthToSpace},
		opImpl{domain: domainONNX, name: "Compress", minOpset: 9, maxOpset: maxOpsetONNX, compile: compileCompress},
		opImpl{domain: domainONNX, name: "ReverseSequence", minOpset: 10, maxOpset: maxOpsetONNX, compile: compileReverseSequence},
		opImpl{domain: domainONNX, name: "NonZero", minOpset: 9, maxOpset: maxOpsetONNX, compile: compileNonZero},
		opImpl{domain: domainONNX, name: "OneHot", minOpset: 9, maxOpset: maxOpsetONNX, compile: compileOneHot},
	)
}

// compileDepthToSpace moves blocks of channels into blocks of pixels (DepthToSpace, in DCR
// or, from opset 11, CRD order) or back (SpaceToDepth): a reshape to six axes and a transpose.
func compileDepthToSpace(n *nodeCtx) (kernel, error) {
	if err := n.arity(1, 1, 1, 1); err != nil {
		return nil, err
	}
	b64, err := n.attrInt("blocksize", 0)
	if err != nil {
		return nil, err
	}
	if b64 < 1 || b64 > 1<<16 {
		return nil, fmt.Errorf("blocksize %d is not a positive size", b64)
	}
	b := int(b64)
	in := n.shape(0)
	if len(in) != 4 {
		return nil, fmt.Errorf("input of shape %s is not [N, C, H, W]", shapeString(in))
	}
	toSpace := n.opType() == "DepthToSpace"
	mode := "DCR"
	if toSpace {
		if mode, err = n.attrString("mode", "DCR"); err != nil {
			return nil, err
		}
		if mode != "DCR" && mode != "CRD" {
			return nil, fmt.Errorf("mode %q is neither DCR nor CRD", mode)
		}
	}
	// blocks gives the six-axis view of an input of shape s, perm the transpose, and out the
	// output's shape; ok is false when s does not divide into blocks.
	var perm []int
	switch {
	case !toSpace:
		perm = []int{0, 3, 5, 1, 2, 4}
	case mode == "DCR":
		perm = []int{0, 3, 4, 1, 5, 2}
	default:
		perm = []int{0, 1, 4, 2, 5, 3}
	}
	blocks := func(s []int) (view, out []int, ok bool) {
		nn, c, h, w := s[0], s[1], s[2], s[3]
		switch {
		case !toSpace:
			return []int{nn, c, h / b, b, w / b, b}, []int{nn, c * b * b, h / b, w / b}, h%b == 0 && w%b == 0
		case mode == "DCR":
			return []int{nn, b, b, c / (b * b), h, w}, []int{nn, c / (b * b), h * b, w * b}, c%(b*b) == 0
		}
		return []int{nn, c / (b * b), b, b, h, w}, []int{nn, c / (b * b), h * b, w * b}, c%(b*b) == 0
	}
	if static(in) {
		_, out, ok := blocks(in)
		if !ok {
			return nil, fmt.Errorf("input of shape %s does not divide into blocks of %d", shapeString(in), b)
		}
		n.setOutTensor(0, n.dtype(0), out)
	} else {
		n.setOutTensor(0, n.dtype(0), []int{n.sym(), n.sym(), n.sym(), n.sym()})
	}
	return kernelFunc(func(x *exec, in, out []*Tensor) error {
		view, shape, ok := blocks(in[0].Shape)
		if !ok {
			return fmt.Errorf("input of shape %v does not divide into blocks of %d", in[0].Shape, b)
		}
		var v Tensor
		v.view(in[0], view)
		if err := runTranspose(x, perm, &v, out[0]); err != nil {
			return err
		}
		out[0].Shape = append(out[0].Shape[:0], shape...)
		return nil
	}), nil
}

// compileCompress keeps the slices along axis (of the flattened input without one) whose
// condition is true; a condition shorter than the axis leaves the rest out.
func compileCompress(n *nodeCtx) (kernel, error) {
	if err := n.arity(2, 2, 1, 1); err != nil {
		return nil, err
	}
	if err := n.needTypes(1, Bool); err != nil {
		return nil, err
	}
	in := n.shape(0)
	axis := -1
	if n.hasAttr("axis") {
		a, err := n.axis("axis", 0, len(in))
		if err != nil {
			return nil, err
		}
		axis = a
	}
	var shape []int
	if axis < 0 {
		shape = []int{n.sym()}
	} else {
		shape = slices.Clone(in)
		shape[axis] = n.sym()
	}
	n.setOutTensor(0, n.dtype(0), shape)
	return kernelFunc(func(x *exec, in, out []*Tensor) error {
		t, cond, o := in[0], data[bool](in[1]), out[0]
		s := t.Shape
		if axis < 0 {
			s = []int{t.Len()}
		}
		ax := max(axis, 0)
		if len(in[1].Shape) != 1 || len(cond) > s[ax] {
			return fmt.Errorf("condition of shape %v does not fit an axis of size %d", in[1].Shape, s[ax])
		}
		kept := 0
		for _, c := range cond {
			if c {
				kept++
			}
		}
		var sb [maxRank]int
		shape := append(sb[:0], s...)
		shape[ax] = kept
		if err := o.reset(t.DType, shape...); err != nil {
			return err
		}
		outer, dim, inner := product(s[:ax]), s[ax], product(s[ax+1:])
		pos := 0
		for b := range outer {
			for i, c := range cond {
				if c {
					copyElems(o, pos, t, (b*dim+i)*inner, inner)
					pos += inner
				}
			}
		}
		return nil
	}), nil
}

// compileReverseSequence reverses, for each batch entry, the first sequence_lens[b] elements
// along the time axis.
func compileReverseSequence(n *nodeCtx) (kernel, error) {
	if err := n.arity(2, 2, 1, 1); err != nil {
		return nil, err
	}
	if err := n.needTypes(1, Int64); err != nil {
		return nil, err
	}
	in := n.shape(0)
	if len(in) < 2 {
		return nil, fmt.Errorf("input of shape %s has no batch and time axes", shapeString(in))
	}
	batchAxis, err := n.attrInt("batch_axis", 1)
	if err != nil {
		return nil, err
	}
	timeAxis, err := n.attrInt("time_axis", 0)
	if err != nil {
		return nil, err
	}
	if min(batchAxis, timeAxis) < 0 || max(batchAxis, timeAxis) > 1 || batchAxis == timeAxis {
		return nil, fmt.Errorf("batch_axis %d and time_axis %d must be 0 and 1", batchAxis, timeAxis)
	}
	n.setOutTensor(0, n.dtype(0), in)
	return kernelFunc(func(x *exec, in, out []*Tensor) error {
		t, lens, o := in[0], data[int64](in[1]), out[0]
		s := t.Shape
		batch, steps := s[batchAxis], s[timeAxis]
		if len(lens) != batch {
			return fmt.Errorf("sequence_lens has %d values for a batch of %d", len(lens), batch)
		}
		for _, l := range lens {
			if l < 0 || l > int64(steps) {
				return fmt.Errorf("sequence length %d is out of range for %d steps", l, steps)
			}
		}
		if err := o.copyFrom(t); err != nil {
			return err
		}
		inner := product(s[2:])
		at := func(b, step int) int {
			if timeAxis == 0 {
				return (step*batch + b) * inner
			}
			return (b*steps + step) * inner
		}
		for b, l := range lens {
			for step := range int(l) {
				copyElems(o, at(b, step), t, at(b, int(l)-1-step), inner)
			}
		}
		return nil
	}), nil
}

// compileNonZero lists the coordinates of the non-zero elements, in row-major order, as
// [rank, count].
func compileNonZero(n *nodeCtx) (kernel, error) {
	if err := n.arity(1, 1, 1, 1); err != nil {
		return nil, err
	}
	if err := n.needTypes(0, append([]DType{Bool}, numericTypes...)...); err != nil {
		return nil, err
	}
	rank := len(n.shape(0))
	n.setOutTensor(0, Int64, []int{rank, n.sym()})
	return kernelFunc(func(x *exec, in, out []*Tensor) error {
		t, o := in[0], out[0]
		mask := x.scratch(0)
		if err := castInto(mask, t, Bool); err != nil {
			return err
		}
		var hits []int
		for i, v := range mask.Bool[:t.Len()] {
			if v {
				hits = append(hits, i)
			}
		}
		if err := o.reset(Int64, len(t.Shape), len(hits)); err != nil {
			return err
		}
		var sb [maxRank]int
		st := strides(&sb, t.Shape)
		for j, h := range hits {
			for d, step := range st {
				o.Int64[d*len(hits)+j] = int64(h / step)
				h %= step
			}
		}
		return nil
	}), nil
}

// compileOneHot writes values[1] where the depth axis (inserted at axis) equals the index and
// values[0] elsewhere; an index in [-depth, -1] counts from the end, one outside [-depth,
// depth) matches nothing.
func compileOneHot(n *nodeCtx) (kernel, error) {
	if err := n.arity(3, 3, 1, 1); err != nil {
		return nil, err
	}
	if err := n.needTypes(0, numericTypes...); err != nil {
		return nil, err
	}
	if err := n.needTypes(1, numericTypes...); err != nil {
		return nil, err
	}
	idx := n.shape(0)
	axisAttr, err := n.attrInt("axis", -1)
	if err != nil {
		return nil, err
	}
	axis, err := normAxis(axisAttr, len(idx)+1)
	if err != nil {
		return nil, err
	}
	depth := n.sym()
	if k := n.konst(1); k != nil && k.Len() == 1 {
		if d, err := oneHotDepth(k); err == nil {
			depth = d
		}
	}
	shape := slices.Insert(slices.Clone(idx), axis, depth)
	if len(shape) > maxRank {
		return nil, fmt.Errorf("output rank %d is more than the %d supported", len(shape), maxRank)
	}
	n.setOutTensor(0, n.dtype(2), shape)
	return kernelFunc(func(x *exec, in, out []*Tensor) error {
		t, values, o := in[0], in[2], out[0]
		depth, err := oneHotDepth(in[1])
		if err != nil {
			return err
		}
		if values.Len() != 2 {
			return fmt.Errorf("values has %d elements, want 2 (off, on)", values.Len())
		}
		ix := x.scratch(0)
		if err := castInto(ix, t, Float64); err != nil {
			return err
		}
		var sb [maxRank]int
		shape := slices.Insert(append(sb[:0], t.Shape...), axis, depth)
		if err := o.reset(values.DType, shape...); err != nil {
			return err
		}
		outer, inner := product(t.Shape[:axis]), product(t.Shape[axis:])
		for b := range outer {
			for d := range depth {
				for i := range inner {
					copyElems(o, (b*depth+d)*inner+i, values, 0, 1)
				}
			}
		}
		for j, v := range ix.Float64[:t.Len()] {
			v = math.Trunc(v)
			if v < 0 {
				v += float64(depth)
			}
			if v < 0 || v >= float64(depth) {
				continue
			}
			b, i := j/inner, j%inner
			copyElems(o, (b*depth+int(v))*inner+i, values, 1, 1)
		}
		return nil
	}), nil
}

// oneHotDepth reads OneHot's depth, a scalar of any numeric type.
func oneHotDepth(t *Tensor) (int, error) {
	if t.Len() != 1 {
		return 0, errors.New("depth must be one value")
	}
	var f Tensor
	if err := castInto(&f, t, Float64); err != nil {
		return 0, err
	}
	d := f.Float64[0]
	if !(d >= 1 && d <= maxElements) {
		return 0, fmt.Errorf("depth %v is not a positive size", d)
	}
	return int(d), nil
}
