package model

// Operators that move or repeat elements: Concat, Split, Slice, Gather, Transpose, Expand, Tile,
// Pad; and those that make tensors: Constant, ConstantOfShape, Range.

import (
	"errors"
	"fmt"
	"math"
	"slices"
)

func init() {
	register(
		opImpl{domain: domainONNX, name: "Concat", minOpset: 4, maxOpset: maxOpsetONNX, compile: compileConcat},
		opImpl{domain: domainONNX, name: "Split", minOpset: 2, maxOpset: maxOpsetONNX, compile: compileSplit},
		opImpl{domain: domainONNX, name: "Slice", minOpset: 1, maxOpset: maxOpsetONNX, compile: compileSlice},
		opImpl{domain: domainONNX, name: "Gather", minOpset: 1, maxOpset: maxOpsetONNX, compile: compileGather},
		opImpl{domain: domainONNX, name: "Transpose", minOpset: 1, maxOpset: maxOpsetONNX, compile: compileTranspose},
		opImpl{domain: domainONNX, name: "Expand", minOpset: 8, maxOpset: maxOpsetONNX, compile: compileExpand},
		opImpl{domain: domainONNX, name: "Tile", minOpset: 6, maxOpset: maxOpsetONNX, compile: compileTile},
		opImpl{domain: domainONNX, name: "Pad", minOpset: 2, maxOpset: maxOpsetONNX, compile: compilePad},
		opImpl{domain: domainONNX, name: "Constant", minOpset: 1, maxOpset: maxOpsetONNX, compile: compileConstant},
		opImpl{domain: domainONNX, name: "ConstantOfShape", minOpset: 9, maxOpset: maxOpsetONNX, compile: compileConstantOfShape},
		opImpl{domain: domainONNX, name: "Range", minOpset: 11, maxOpset: maxOpsetONNX, compile: compileRange},
	)
}

// compileConcat joins tensors along an axis. For small integer vectors (shapes being computed)
// it also joins what is known of their values.
func compileConcat(n *nodeCtx) (kernel, error) {
	if err := n.arity(1, math.MaxInt, 1, 1); err != nil {
		return nil, err
	}
	if !n.hasAttr("axis") {
		return nil, errors.New("attribute axis is required")
	}
	axisAttr, err := n.attrInt("axis", 0)
	if err != nil {
		return nil, err
	}
	first := n.shape(0)
	if axisAttr < 0 && n.opset < 11 {
		return nil, fmt.Errorf("negative axis %d before opset 11", axisAttr)
	}
	axis, err := normAxis(axisAttr, len(first))
	if err != nil {
		return nil, err
	}
	shape := slices.Clone(first)
	sum := symProduct{}
	var syms []symVal
	symsKnown := len(first) == 1
	for i := range n.numIn() {
		if !n.has(i) {
			return nil, fmt.Errorf("input %d is empty", i)
		}
		if err := n.sameType(i); err != nil {
			return nil, err
		}
		s := n.shape(i)
		if len(s) != len(first) {
			return nil, fmt.Errorf("inputs %s and %s differ in rank", shapeString(first), shapeString(s))
		}
		for d := range s {
			if d == axis {
				continue
			}
			switch {
			case s[d] == shape[d]:
			case shape[d] < 0 && s[d] >= 0:
				shape[d] = s[d]
			case s[d] < 0:
			default:
				return nil, fmt.Errorf("inputs %s and %s differ off axis %d", shapeString(first), shapeString(s), axis)
			}
		}
		if s[axis] < 0 {
			sum.syms = append(sum.syms, s[axis])
		} else {
			sum.k += s[axis]
		}
		if v, ok := n.symInts(i); ok && symsKnown {
			syms = append(syms, v...)
		} else {
			symsKnown = false
		}
	}
	switch {
	case len(sum.syms) == 0:
		shape[axis] = sum.k
	case len(sum.syms) == 1 && sum.k == 0:
		shape[axis] = sum.syms[0]
	default:
		shape[axis] = n.sym()
	}
	n.setOutTensor(0, n.dtype(0), shape)
	if symsKnown {
		n.setSym(0, syms)
	}
	return rowFunc{kernelFunc: func(x *exec, in, out []*Tensor) error {
		return runConcat(axis, in, out[0])
	}, local: func(batch int, in, out []valueType) bool {
		for _, t := range in {
			if !batchMajor(t, batch) {
				return false
			}
		}
		return axis > 0 && batchMajor(out[0], batch)
	}}, nil
}

func runConcat(axis int, in []*Tensor, o *Tensor) error {
	var buf [maxRank]int
	first := in[0].Shape
	shape := append(buf[:0], first...)
	shape[axis] = 0
	for _, t := range in {
		if len(t.Shape) != len(first) {
			return fmt.Errorf("inputs %v and %v differ in rank", first, t.Shape)
		}
		for d := range t.Shape {
			if d != axis && t.Shape[d] != first[d] {
				return fmt.Errorf("inputs %v and %v differ off axis %d", first, t.Shape, axis)
			}
		}
		shape[axis] += t.Shape[axis]
	}
	if err := o.reset(in[0].DType, shape...); err != nil {
		return err
	}
	outer := product(first[:axis])
	pos := 0
	for i := range outer {
		for _, t := range in {
			chunk := product(t.Shape[axis:])
			copyElems(o, pos, t, i*chunk, chunk)
			pos += chunk
		}
	}
	return nil
}

func compileSplit(n *nodeCtx) (kernel, error) {
	if err := n.arity(1, 2, 1, math.MaxInt); err != nil {
		return nil, err
	}
	in := n.shape(0)
	axis, err := n.axis("axis", 0, len(in))
	if err != nil {
		return nil, err
	}
	outs := n.numOut()
	var split []int64
	splitGiven, runtimeSplit := false, false
	if n.opset < 13 {
		split, splitGiven, err = n.attrInts("split")
		if err != nil {
			return nil, err
		}
		if n.numIn() > 1 {
			return nil, errors.New("Split takes one input before opset 13")
		}
	} else if n.has(1) {
		if err := n.needTypes(1, Int64); err != nil {
			return nil, err
		}
		splitGiven = true
		if s := n.shape(1); len(s) != 1 || (s[0] >= 0 && s[0] != outs) {
			return nil, fmt.Errorf("split of shape %s for %d outputs", shapeString(s), outs)
		}
		var known bool
		if split, known = n.ints(1); !known {
			runtimeSplit = true
		}
	}
	if n.opset >= 18 {
		numOutputs, err := n.attrInt("num_outputs", 0)
		if err != nil {
			return nil, err
		}
		if splitGiven == (numOutputs != 0) {
			return nil, errors.New("exactly one of split and num_outputs must be given")
		}
		if numOutputs != 0 && numOutputs != int64(outs) {
			return nil, fmt.Errorf("num_outputs is %d but the node has %d outputs", numOutputs, outs)
		}
	}
	if splitGiven && !runtimeSplit && len(split) != outs {
		return nil, fmt.Errorf("split %v has %d parts for %d outputs", split, len(split), outs)
	}
	dim := in[axis]
	sizes := make([]int, outs)
	switch {
	case runtimeSplit:
		for i := range sizes {
			sizes[i] = n.sym()
		}
	case splitGiven:
		total := 0
		for i, s := range split {
			if s < 0 || s > maxElements {
				return nil, fmt.Errorf("split %v has a negative part", split)
			}
			sizes[i] = int(s)
			total += int(s)
		}
		if dim >= 0 && total != dim {
			return nil, fmt.Errorf("split %v does not add up to %d", split, dim)
		}
	case dim < 0:
		for i := range sizes {
			sizes[i] = n.sym()
		}
	default:
		// Equal parts; from opset 18 the last may be smaller (ceil-sized parts).
		part := dim / outs
		if dim%outs != 0 {
			if n.opset < 18 {
				return nil, fmt.Errorf("axis %d of size %d does not split into %d equal parts", axis, dim, outs)
			}
			part = (dim + outs - 1) / outs
		}
		for i := range sizes {
			sizes[i] = min(part, max(dim-i*part, 0))
		}
	}
	for i, s := range sizes {
		shape := slices.Clone(in)
		shape[axis] = s
		n.setOutTensor(i, n.dtype(0), shape)
	}
	dynamic, ceil := !splitGiven, n.opset >= 18
	return kernelFunc(func(x *exec, in, out []*Tensor) error {
		t := in[0]
		d := t.Shape[axis]
		var buf [maxRank]int
		shape := append(buf[:0], t.Shape...)
		outer, inner := product(t.Shape[:axis]), product(t.Shape[axis+1:])
		start := 0
		part := (d + len(out) - 1) / len(out)
		for i, o := range out {
			s := 0
			if runtimeSplit {
				parts := data[int64](in[1])
				if len(parts) != len(out) {
					return fmt.Errorf("split %v has %d parts for %d outputs", parts, len(parts), len(out))
				}
				if parts[i] < 0 || parts[i] > int64(d) {
					return fmt.Errorf("split %v does not fit axis %d of size %d", parts, axis, d)
				}
				s = int(parts[i])
			} else if dynamic {
				if d%len(out) != 0 && !ceil {
					return fmt.Errorf("axis %d of size %d does not split into %d equal parts", axis, d, len(out))
				}
				s = min(part, max(d-i*part, 0))
			} else {
				s = sizes[i]
			}
			if start+s > d {
				return fmt.Errorf("split %v does not fit axis %d of size %d", sizes, axis, d)
			}
			shape[axis] = s
			if err := o.reset(t.DType, shape...); err != nil {
				return err
			}
			for j := range outer {
				copyElems(o, j*s*inner, t, (j*d+start)*inner, s*inner)
			}
			start += s
		}
		if start != d {
			return fmt.Errorf("split parts add up to %d, axis %d has %d", start, axis, d)
		}
		return nil
	}), nil
}

// sliceParams reads Slice's starts, ends, axes and steps: attributes before opset 10, inputs
// from 10 (which may be computed at run time: ok is false then).
func sliceParams(n *nodeCtx) (starts, ends, axes, steps []int64, ok bool, err error) {
	if n.opset < 10 {
		if starts, _, err = n.attrInts("starts"); err != nil {
			return
		}
		if ends, _, err = n.attrInts("ends"); err != nil {
			return
		}
		if axes, _, err = n.attrInts("axes"); err != nil {
			return
		}
		return starts, ends, axes, nil, true, nil
	}
	ok = true
	get := func(i int) []int64 {
		if !n.has(i) {
			return nil
		}
		if err == nil {
			err = n.needTypes(i, Int32, Int64)
		}
		v, known := n.ints(i)
		ok = ok && known
		return v
	}
	starts, ends, axes, steps = get(1), get(2), get(3), get(4)
	return
}

func compileSlice(n *nodeCtx) (kernel, error) {
	minIn, maxIn := 1, 1
	if n.opset >= 10 {
		minIn, maxIn = 3, 5
	}
	if err := n.arity(minIn, maxIn, 1, 1); err != nil {
		return nil, err
	}
	in := n.shape(0)
	starts, ends, axes, steps, known, err := sliceParams(n)
	if err != nil {
		return nil, err
	}
	out := slices.Clone(in)
	if known {
		var plan [maxRank]sliceAxis
		sp, err := resolveSlice(&plan, in, starts, ends, axes, steps, true)
		if err != nil {
			return nil, err
		}
		for d, s := range sp {
			if s.touched {
				if in[d] < 0 {
					if !s.whole {
						out[d] = n.sym()
					}
					continue
				}
				out[d] = s.n
			}
		}
		if vals, ok := n.symInts(0); ok && len(in) == 1 && static(out) {
			s := sp[0]
			var sliced []symVal
			for i := range s.n {
				sliced = append(sliced, vals[s.start+i*s.step])
			}
			n.setSym(0, sliced)
		}
	} else {
		for d := range out {
			out[d] = n.sym()
		}
	}
	n.setOutTensor(0, n.dtype(0), out)
	attrs := n.opset < 10
	return kernelFunc(func(x *exec, in, out []*Tensor) error {
		st, en, ax, stp := starts, ends, axes, steps
		if !attrs {
			ints := func(i int) []int64 {
				if i >= len(in) || in[i] == nil {
					return nil
				}
				v, _ := intValues(in[i])
				return v
			}
			// intValues of an INT32 input allocates; INT64 (what exporters write) does not.
			st, en, ax, stp = ints(1), ints(2), ints(3), ints(4)
		}
		var plan [maxRank]sliceAxis
		sp, err := resolveSlice(&plan, in[0].Shape, st, en, ax, stp, false)
		if err != nil {
			return err
		}
		return runSlice(x, sp, in[0], out[0])
	}), nil
}

// sliceAxis is what Slice does along one axis.
type sliceAxis struct {
	start, step, n int
	touched, whole bool
}

// resolveSlice turns Slice's arguments into one sliceAxis per axis of shape. At load
// (symbolic true) a symbolic axis is left alone unless sliced.
func resolveSlice(dst *[maxRank]sliceAxis, shape []int, starts, ends, axes, steps []int64, symbolic bool) ([]sliceAxis, error) {
	if len(shape) > maxRank {
		return nil, fmt.Errorf("rank %d is more than the %d supported", len(shape), maxRank)
	}
	sp := dst[:len(shape)]
	for d, s := range shape {
		sp[d] = sliceAxis{start: 0, step: 1, n: s, whole: true}
	}
	if len(starts) != len(ends) || (axes != nil && len(axes) != len(starts)) || (steps != nil && len(steps) != len(starts)) {
		return nil, fmt.Errorf("starts %v, ends %v, axes %v and steps %v differ in length", starts, ends, axes, steps)
	}
	for i := range starts {
		axis := i
		if axes != nil {
			a, err := normAxis(axes[i], len(shape))
			if err != nil {
				return nil, err
			}
			axis = a
		}
		if axis >= len(shape) {
			return nil, fmt.Errorf("starts %v slice more axes than the input's %d", starts, len(shape))
		}
		step := int64(1)
		if steps != nil {
			step = steps[i]
		}
		if step == 0 {
			return nil, errors.New("a step is 0")
		}
		s := &sp[axis]
		if s.touched {
			return nil, fmt.Errorf("axis %d is sliced twice", axis)
		}
		s.touched = true
		dim := shape[axis]
		if dim < 0 {
			s.whole = starts[i] == 0 && ends[i] >= math.MaxInt32 && step == 1
			continue
		}
		neg := step < 0
		start, end := clampIndex(starts[i], dim, neg), clampIndex(ends[i], dim, neg)
		st := int(max(min(step, maxElements), -maxElements))
		s.start, s.step, s.n = start, st, sliceLen(start, end, st)
		s.whole = s.start == 0 && s.step == 1 && s.n == dim
	}
	_ = symbolic
	return sp, nil
}

// runSlice copies the slice described by sp from t into o, a contiguous run at a time when the
// last axis has step 1.
func runSlice(x *exec, sp []sliceAxis, t, o *Tensor) error {
	var buf [maxRank]int
	shape := buf[:len(sp)]
	for d, s := range sp {
		shape[d] = s.n
	}
	if err := o.reset(t.DType, shape...); err != nil {
		return err
	}
	if o.Len() == 0 {
		return nil
	}
	rank := len(sp)
	if rank == 0 {
		copyElems(o, 0, t, 0, 1)
		return nil
	}
	var strides [maxRank]int
	st := 1
	for d := rank - 1; d >= 0; d-- {
		strides[d] = st
		st *= t.Shape[d]
	}
	last := sp[rank-1]
	var idx [maxRank]int
	pos := 0
	for {
		off := 0
		for d := range rank - 1 {
			off += (sp[d].start + idx[d]*sp[d].step) * strides[d]
		}
		if last.step == 1 {
			copyElems(o, pos, t, off+last.start, last.n)
			pos += last.n
		} else {
			for i := range last.n {
				copyElems(o, pos, t, off+last.start+i*last.step, 1)
				pos++
			}
		}
		d := rank - 2
		for ; d >= 0; d-- {
			idx[d]++
			if idx[d] < sp[d].n {
				break
			}
			idx[d] = 0
		}
		if d < 0 {
			return nil
		}
	}
}

func compileGather(n *nodeCtx) (kernel, error) {
	if err := n.arity(2, 2, 1, 1); err != nil {
		return nil, err
	}
	if err := n.needTypes(1, Int32, Int64); err != nil {
		return nil, err
	}
	data, idx := n.shape(0), n.shape(1)
	axis, err := n.axis("axis", 0, len(data))
	if err != nil {
		return nil, err
	}
	shape := append(append(slices.Clone(data[:axis]), idx...), data[axis+1:]...)
	if len(shape) > maxRank {
		return nil, fmt.Errorf("output rank %d is more than the %d supported", len(shape), maxRank)
	}
	n.setOutTensor(0, n.dtype(0), shape)
	if n.typ(0).kind != kindTensor {
		return nil, unsupported("Gather takes a tensor")
	}
	if vals, ok := n.symInts(0); ok && len(data) == 1 {
		if is, ok := n.ints(1); ok {
			var picked []symVal
			for _, i := range is {
				if i < 0 {
					i += int64(len(vals))
				}
				if i < 0 || i >= int64(len(vals)) {
					return nil, fmt.Errorf("index %d is out of range for %d values", i, len(vals))
				}
				picked = append(picked, vals[i])
			}
			n.setSym(0, picked)
		}
	}
	return rowFunc{kernelFunc: func(x *exec, in, out []*Tensor) error {
		return runGather(axis, in[0], in[1], out[0])
	}, local: func(batch int, in, out []valueType) bool {
		// An embedding lookup (constant table, batch-major ids), or a gather across the
		// columns of batch-major data.
		return batchMajor(out[0], batch) && ((axis == 0 && batchFree(in[0], batch) && batchMajor(in[1], batch)) ||
			(axis > 0 && batchMajor(in[0], batch) && batchFree(in[1], batch)))
	}}, nil
}

func runGather(axis int, t, indices, o *Tensor) error {
	if axis >= len(t.Shape) {
		return fmt.Errorf("axis %d is out of range for shape %v", axis, t.Shape)
	}
	var buf [maxRank]int
	shape := append(append(append(buf[:0], t.Shape[:axis]...), indices.Shape...), t.Shape[axis+1:]...)
	if len(shape) > maxRank {
		return fmt.Errorf("output rank %d is more than the %d supported", len(shape), maxRank)
	}
	dim := t.Shape[axis]
	outer, inner := product(t.Shape[:axis]), product(t.Shape[axis+1:])
	ni := indices.Len()
	// Check every index before writing anything.
	index := func(j int) int {
		if indices.DType == Int64 {
			return int(indices.Int64[j])
		}
		return int(indices.Int32[j])
	}
	for j := range ni {
		if i := index(j); i < -dim || i >= dim {
			return fmt.Errorf("index %d is out of range for axis %d of size %d", i, axis, dim)
		}
	}
	if err := o.reset(t.DType, shape...); err != nil {
		return err
	}
	pos := 0
	for b := range outer {
		for j := range ni {
			i := index(j)
			if i < 0 {
				i += dim
			}
			copyElems(o, pos, t, (b*dim+i)*inner, inner)
			pos += inner
		}
	}
	return nil
}

func compileTranspose(n *nodeCtx) (kernel, error) {
	if err := n.arity(1, 1, 1, 1); err != nil {
		return nil, err
	}
	in := n.shape(0)
	permAttr, given, err := n.attrInts("perm")
	if err != nil {
		return nil, err
	}
	perm := make([]int, len(in))
	for i := range perm {
		perm[i] = len(in) - 1 - i
	}
	if given {
		if len(permAttr) != len(in) {
			return nil, fmt.Errorf("perm %v does not match rank %d", permAttr, len(in))
		}
		for i, p := range permAttr {
			if p < 0 || p >= int64(len(in)) || slices.Contains(perm[:i], int(p)) {
				return nil, fmt.Errorf("perm %v is not a permutation of the axes", permAttr)
			}
			perm[i] = int(p)
		}
	}
	shape := make([]int, len(in))
	for i, p := range perm {
		shape[i] = in[p]
	}
	n.setOutTensor(0, n.dtype(0), shape)
	return rowFunc{kernelFunc: func(x *exec, in, out []*Tensor) error {
		return runTranspose(x, perm, in[0], out[0])
	}, local: func(batch int, in, out []valueType) bool {
		return perm[0] == 0 && firstRows(batch, in, out)
	}}, nil
}

// runTranspose walks the output in order, reading the input through permuted strides.
func runTranspose(x *exec, perm []int, t, o *Tensor) error {
	rank := len(perm)
	if len(t.Shape) != rank {
		return fmt.Errorf("input of rank %d, perm of %d", len(t.Shape), rank)
	}
	var inStrides [maxRank]int
	dims := x.dimArrays()
	shape, strides, idx := &dims[0], &dims[1], &dims[2]
	*idx = [maxRank]int{}
	st := 1
	for d := rank - 1; d >= 0; d-- {
		inStrides[d] = st
		st *= t.Shape[d]
	}
	for i, p := range perm {
		shape[i] = t.Shape[p]
		strides[i] = inStrides[p]
	}
	if err := o.reset(t.DType, shape[:rank]...); err != nil {
		return err
	}
	total := o.Len()
	if total == 0 {
		return nil
	}
	if rank == 0 {
		copyElems(o, 0, t, 0, 1)
		return nil
	}
	transposeFns[t.DType](o, t, shape[:rank], strides[:rank], idx[:rank])
	return nil
}

var transposeFns = everyType(transposeOn[float32], transposeOn[float64], transposeOn[int8], transposeOn[int16],
	transposeOn[int32], transposeOn[int64], transposeOn[uint8], transposeOn[uint16], transposeOn[uint32],
	transposeOn[uint64], transposeOn[bool], transposeOn[string])

func transposeOn[T elem](o, t *Tensor, shape, strides, idx []int) {
	transposeT(data[T](o), data[T](t), shape, strides, idx)
}

func transposeT[T any](o, t []T, shape, strides, idx []int) {
	rank := len(shape)
	last, ls := shape[rank-1], strides[rank-1]
	pos := 0
	for {
		off := 0
		for d := range rank - 1 {
			off += idx[d] * strides[d]
		}
		row := o[pos : pos+last]
		for i := range row {
			row[i] = t[off+i*ls]
		}
		pos += last
		d := rank - 2
		for ; d >= 0; d-- {
			idx[d]++
			if idx[d] < shape[d] {
				break
			}
			idx[d] = 0
		}
		if d < 0 {
			return
		}
	}
}

// next advances an odometer over shape; false when it wraps around.
func next(idx, shape []int) bool {
	for d := len(idx) - 1; d >= 0; d-- {
		idx[d]++
		if idx[d] < shape[d] {
			return true
		}
		idx[d] = 0
	}
	return false
}

// shapeArg reads a 1-D INT64 shape input at load: the output rank, and the dimensions as far as
// they are known.
func shapeArg(n *nodeCtx, i int) ([]int, error) {
	if err := n.needTypes(i, Int64); err != nil {
		return nil, err
	}
	s := n.shape(i)
	if len(s) != 1 || s[0] < 0 {
		return nil, unsupported("the shape input has shape %s: the output's rank would be known only at run time", shapeString(s))
	}
	if s[0] > maxRank {
		return nil, fmt.Errorf("shape of %d dimensions is more than the %d supported", s[0], maxRank)
	}
	dims := make([]int, s[0])
	vals, ok := n.symInts(i)
	for d := range dims {
		switch {
		case !ok || len(vals) != len(dims):
			dims[d] = n.sym()
		case vals[d].sym < 0:
			dims[d] = vals[d].sym
		case vals[d].v < 0 || vals[d].v > maxElements:
			return nil, fmt.Errorf("shape %v has an invalid dimension %d", symString(vals), vals[d].v)
		default:
			dims[d] = int(vals[d].v)
		}
	}
	return dims, nil
}

// runShapeArg reads a shape input at run time.
func runShapeArg(dst *[maxRank]int, t *Tensor) ([]int, error) {
	v := data[int64](t)
	if len(v) > maxRank {
		return nil, fmt.Errorf("shape %v has more than %d dimensions", v, maxRank)
	}
	out := dst[:len(v)]
	for i, d := range v {
		if d < 0 || d > maxElements {
			return nil, fmt.Errorf("shape %v has an invalid dimension %d", v, d)
		}
		out[i] = int(d)
	}
	return out, checkDims(out)
}

func compileExpand(n *nodeCtx) (kernel, error) {
	if err := n.arity(2, 2, 1, 1); err != nil {
		return nil, err
	}
	target, err := shapeArg(n, 1)
	if err != nil {
		return nil, err
	}
	shape, err := broadcastDims(n, n.shape(0), target)
	if err != nil {
		return nil, err
	}
	n.setOutTensor(0, n.dtype(0), shape)
	return kernelFunc(func(x *exec, in, out []*Tensor) error {
		var tb, sb [maxRank]int
		target, err := runShapeArg(&tb, in[1])
		if err != nil {
			return err
		}
		shape, err := runBroadcast(&sb, in[0].Shape, target, nil)
		if err != nil {
			return err
		}
		return broadcastCopy(in[0], out[0], shape)
	}), nil
}

// broadcastCopy writes t broadcast to shape into o.
func broadcastCopy(t, o *Tensor, shape []int) error {
	if err := o.reset(t.DType, shape...); err != nil {
		return err
	}
	var bc bcast // broadcastCopy calls no function value, so bc stays on the stack
	bc.init(o.Shape, t.Shape, nil, nil)
	for r := range bc.runs {
		off, _, _ := bc.offsets(r)
		if bc.step[0] == 1 {
			copyElems(o, r*bc.run, t, off, bc.run)
		} else {
			for i := range bc.run {
				copyElems(o, r*bc.run+i, t, off, 1)
			}
		}
	}
	return nil
}

func compileTile(n *nodeCtx) (kernel, error) {
	if err := n.arity(2, 2, 1, 1); err != nil {
		return nil, err
	}
	in := n.shape(0)
	if err := n.needTypes(1, Int64); err != nil {
		return nil, err
	}
	shape := make([]int, len(in))
	reps, ok := n.ints(1)
	for d := range shape {
		switch {
		case !ok:
			shape[d] = n.sym()
		case len(reps) != len(in):
			return nil, fmt.Errorf("repeats %v do not match rank %d", reps, len(in))
		case reps[d] < 0 || reps[d] > maxElements:
			return nil, fmt.Errorf("repeats %v has an invalid count", reps)
		case in[d] < 0 && reps[d] != 1:
			shape[d] = n.sym()
		default:
			shape[d] = in[d] * int(reps[d])
		}
	}
	if err := checkDims(concrete(shape)); err != nil {
		return nil, err
	}
	n.setOutTensor(0, n.dtype(0), shape)
	return kernelFunc(func(x *exec, in, out []*Tensor) error {
		t := in[0]
		reps := data[int64](in[1])
		if len(reps) != len(t.Shape) {
			return fmt.Errorf("repeats %v do not match rank %d", reps, len(t.Shape))
		}
		var sb [maxRank]int
		shape := sb[:len(t.Shape)]
		n := 1
		for d, r := range reps {
			if r < 0 || r > maxElements {
				return fmt.Errorf("repeats %v has an invalid count", reps)
			}
			shape[d] = t.Shape[d] * int(r)
			if shape[d] != 0 && n > maxElements/shape[d] {
				return fmt.Errorf("tiling %v by %v exceeds %d elements", t.Shape, reps, maxElements)
			}
			n *= shape[d]
		}
		o := out[0]
		if err := o.reset(t.DType, shape...); err != nil {
			return err
		}
		var idx [maxRank]int
		rank := len(shape)
		if o.Len() == 0 {
			return nil
		}
		var strides [maxRank]int
		st := 1
		for d := rank - 1; d >= 0; d-- {
			strides[d] = st
			st *= t.Shape[d]
		}
		for pos := range o.Len() {
			off := 0
			for d := range rank {
				off += (idx[d] % t.Shape[d]) * strides[d]
			}
			copyElems(o, pos, t, off, 1)
			next(idx[:rank], shape)
		}
		return nil
	}), nil
}

func compileConstant(n *nodeCtx) (kernel, error) {
	if err := n.arity(0, 0, 1, 1); err != nil {
		return nil, err
	}
	if len(n.node.Attributes) != 1 {
		return nil, fmt.Errorf("Constant needs exactly one attribute, has %d", len(n.node.Attributes))
	}
	a := &n.node.Attributes[0]
	var t *Tensor
	switch a.Name {
	case "value":
		v, err := n.attrTensor("value")
		if err != nil {
			return nil, err
		}
		t = v
	case "value_float":
		t = &Tensor{DType: Float32, Shape: []int{}, Float32: []float32{a.F}}
	case "value_floats":
		t = &Tensor{DType: Float32, Shape: []int{len(a.Floats)}, Float32: slices.Clone(a.Floats)}
	case "value_int":
		t = &Tensor{DType: Int64, Shape: []int{}, Int64: []int64{a.I}}
	case "value_ints":
		t = &Tensor{DType: Int64, Shape: []int{len(a.Ints)}, Int64: slices.Clone(a.Ints)}
	case "value_string":
		t = &Tensor{DType: String, Shape: []int{}, String: []string{string(a.S)}}
	case "value_strings":
		ss, _, err := n.attrStrings("value_strings")
		if err != nil {
			return nil, err
		}
		t = &Tensor{DType: String, Shape: []int{len(ss)}, String: ss}
	case "sparse_value":
		return nil, unsupported("Constant with a sparse_value")
	default:
		return nil, fmt.Errorf("Constant has an unknown attribute %s", a.Name)
	}
	if n.opset < 12 && a.Name != "value" && a.Name != "sparse_value" {
		return nil, fmt.Errorf("attribute %s arrived with opset 12", a.Name)
	}
	n.setConst(0, t)
	return nil, nil
}

func compileConstantOfShape(n *nodeCtx) (kernel, error) {
	if err := n.arity(1, 1, 1, 1); err != nil {
		return nil, err
	}
	shape, err := shapeArg(n, 0)
	if err != nil {
		return nil, err
	}
	fill := &Tensor{DType: Float32, Shape: []int{1}, Float32: []float32{0}}
	if n.hasAttr("value") {
		v, err := n.attrTensor("value")
		if err != nil {
			return nil, err
		}
		if v.Len() != 1 {
			return nil, fmt.Errorf("attribute value has %d elements, want 1", v.Len())
		}
		fill = v
	}
	n.setOutTensor(0, fill.DType, shape)
	return kernelFunc(func(x *exec, in, out []*Tensor) error {
		var sb [maxRank]int
		shape, err := runShapeArg(&sb, in[0])
		if err != nil {
			return err
		}
		o := out[0]
		if err := o.reset(fill.DType, shape...); err != nil {
			return err
		}
		for i := range o.Len() {
			copyElems(o, i, fill, 0, 1)
		}
		return nil
	}), nil
}

func compileRange(n *nodeCtx) (kernel, error) {
	if err := n.arity(3, 3, 1, 1); err != nil {
		return nil, err
	}
	if err := n.needTypes(0, Float32, Float64, Int16, Int32, Int64); err != nil {
		return nil, err
	}
	if err := n.sameType(1, 2); err != nil {
		return nil, err
	}
	for i := range 3 {
		if s := n.shape(i); len(s) != 0 && (len(s) != 1 || s[0] != 1) {
			return nil, fmt.Errorf("input %d has shape %s; Range takes scalars", i, shapeString(s))
		}
	}
	dt := n.dtype(0)
	n.setOutTensor(0, dt, []int{n.sym()})
	return kernelFunc(func(x *exec, in, out []*Tensor) error {
		t := x.scratch(0)
		var v [3]float64
		for i := range 3 {
			if err := castInto(t, in[i], Float64); err != nil {
				return err
			}
			v[i] = t.Float64[0]
		}
		start, limit, delta := v[0], v[1], v[2]
		if delta == 0 || math.IsNaN(start+limit+delta) || math.IsInf(start+limit+delta, 0) {
			return fmt.Errorf("range from %v to %v by %v", start, limit, delta)
		}
		count := math.Ceil((limit - start) / delta)
		if count > maxElements {
			return fmt.Errorf("range from %v to %v by %v has more than %d elements", start, limit, delta, maxElements)
		}
		size := int(max(count, 0))
		o := out[0]
		if err := o.reset(dt, size); err != nil {
			return err
		}
		switch dt {
		case Float32:
			s, d := in[0].Float32[0], in[2].Float32[0]
			for i := range size {
				o.Float32[i] = s + float32(i)*d
			}
		case Float64:
			for i := range size {
				o.Float64[i] = start + float64(i)*delta
			}
		case Int16:
			s, d := in[0].Int16[0], in[2].Int16[0]
			for i := range size {
				o.Int16[i] = s + int16(i)*d
			}
		case Int32:
			s, d := in[0].Int32[0], in[2].Int32[0]
			for i := range size {
				o.Int32[i] = s + int32(i)*d
			}
		case Int64:
			s, d := in[0].Int64[0], in[2].Int64[0]
			for i := range size {
				o.Int64[i] = s + int64(i)*d
			}
		}
		return nil
	}), nil
}

func compilePad(n *nodeCtx) (kernel, error) {
	attrs := n.opset < 11
	if attrs {
		if err := n.arity(1, 1, 1, 1); err != nil {
			return nil, err
		}
	} else if err := n.arity(2, 4, 1, 1); err != nil {
		return nil, err
	}
	mode, err := n.attrString("mode", "constant")
	if err != nil {
		return nil, err
	}
	switch mode {
	case "constant", "reflect", "edge":
	case "wrap":
		if n.opset < 19 {
			return nil, fmt.Errorf("mode wrap arrived with opset 19")
		}
	default:
		return nil, fmt.Errorf("mode %q is not constant, reflect, edge or wrap", mode)
	}
	in := n.shape(0)
	rank := len(in)
	var pads, axes []int64
	var value float64
	known, runtimeAxes := true, false
	if attrs {
		name := "pads"
		if n.opset < 2 {
			name = "paddings"
		}
		pads, _, err = n.attrInts(name)
		if err != nil {
			return nil, err
		}
		v, err := n.attrFloat("value", 0)
		if err != nil {
			return nil, err
		}
		value = float64(v)
	} else {
		if err := n.needTypes(1, Int64); err != nil {
			return nil, err
		}
		pads, known = n.ints(1)
		if n.has(3) {
			if n.opset < 18 {
				return nil, errors.New("Pad's axes input arrived with opset 18")
			}
			if err := n.needTypes(3, Int32, Int64); err != nil {
				return nil, err
			}
			var ok bool
			if axes, ok = n.ints(3); !ok {
				known, runtimeAxes = false, true
			}
		}
		if n.has(2) {
			if err := n.sameType(2); err != nil {
				return nil, err
			}
		}
	}
	shape := slices.Clone(in)
	if known {
		full, err := fullPads(pads, axes, rank)
		if err != nil {
			return nil, err
		}
		for d := range shape {
			if shape[d] >= 0 {
				shape[d] += full[d] + full[d+rank]
				if shape[d] < 0 {
					return nil, fmt.Errorf("pads %v remove more than axis %d holds", pads, d)
				}
			} else if full[d] != 0 || full[d+rank] != 0 {
				shape[d] = n.sym()
			}
		}
	} else {
		for d := range shape {
			shape[d] = n.sym()
		}
	}
	n.setOutTensor(0, n.dtype(0), shape)
	if err := n.needTypes(0, Float32, Float64, Int8, Int16, Int32, Int64, Uint8, Uint16, Uint32, Uint64, Bool, String); err != nil {
		return nil, err
	}
	return &padKernel{mode: mode, attrs: attrs, pads: pads, axes: axes, runtimeAxes: runtimeAxes, value: value}, nil
}

// fullPads expands pads given for some axes to begin and end pads for every axis.
func fullPads(pads, axes []int64, rank int) ([]int, error) {
	full := make([]int, 2*rank)
	na := rank
	if axes != nil {
		na = len(axes)
	}
	if len(pads) != 2*na {
		return nil, fmt.Errorf("pads %v should have %d values", pads, 2*na)
	}
	for i := range na {
		axis := i
		if axes != nil {
			a, err := normAxis(axes[i], rank)
			if err != nil {
				return nil, err
			}
			axis = a
		}
		for _, p := range []int64{pads[i], pads[i+na]} {
			if p < -maxElements || p > maxElements {
				return nil, fmt.Errorf("pads %v are out of range", pads)
			}
		}
		full[axis], full[axis+rank] = int(pads[i]), int(pads[i+na])
	}
	return full, nil
}

type padKernel struct {
	mode        string
	attrs       bool
	pads, axes  []int64
	runtimeAxes bool // the axes are an input computed at run time
	value       float64
}

func (k *padKernel) run(x *exec, in, out []*Tensor) error {
	t := in[0]
	rank := len(t.Shape)
	pads := k.pads
	if !k.attrs {
		pads = data[int64](in[1])
	}
	axes := k.axes
	if k.runtimeAxes {
		axes, _ = intValues(in[3])
	}
	full, err := fullPads(pads, axes, rank)
	if err != nil {
		return err
	}
	var sb [maxRank]int
	shape := sb[:rank]
	for d := range shape {
		shape[d] = t.Shape[d] + full[d] + full[d+rank]
		if shape[d] < 0 {
			return fmt.Errorf("pads %v remove more than axis %d holds", pads, d)
		}
		if k.mode != "constant" && t.Shape[d] == 0 && shape[d] > 0 {
			return fmt.Errorf("mode %s cannot pad the empty axis %d", k.mode, d)
		}
	}
	o := out[0]
	if err := o.reset(t.DType, shape...); err != nil {
		return err
	}
	// The fill value: an attribute before opset 11, else the optional third input.
	fill := x.scratch(0)
	if err := fill.reset(t.DType); err != nil {
		return err
	}
	if !k.attrs && len(in) > 2 && in[2] != nil {
		if in[2].Len() != 1 {
			return fmt.Errorf("constant_value has %d elements, want 1", in[2].Len())
		}
		copyElems(fill, 0, in[2], 0, 1)
	} else if t.DType != String && t.DType != Bool {
		f := &Tensor{DType: Float64, Shape: []int{}, Float64: []float64{k.value}}
		if err := castInto(fill, f, t.DType); err != nil {
			return err
		}
	} else if t.DType == String {
		fill.String[0] = ""
	} else {
		fill.Bool[0] = false
	}
	if o.Len() == 0 {
		return nil
	}
	var strides, idx [maxRank]int
	st := 1
	for d := rank - 1; d >= 0; d-- {
		strides[d] = st
		st *= t.Shape[d]
	}
	for pos := range o.Len() {
		off, inside := 0, true
		for d := range rank {
			i := idx[d] - full[d]
			if n := t.Shape[d]; i < 0 || i >= n {
				switch k.mode {
				case "constant":
					inside = false
				case "edge":
					i = min(max(i, 0), n-1)
				case "wrap":
					i = ((i % n) + n) % n
				case "reflect":
					i = reflect(i, n)
				}
			}
			off += i * strides[d]
		}
		if inside {
			copyElems(o, pos, t, off, 1)
		} else {
			copyElems(o, pos, fill, 0, 1)
		}
		if rank > 0 {
			next(idx[:rank], shape)
		}
	}
	return nil
}

// reflect mirrors an index into [0, n) without repeating the edge, as numpy.pad's reflect mode.
func reflect(i, n int) int {
	if n == 1 {
		return 0
	}
	period := 2 * (n - 1)
	i = ((i % period) + period) % period
	if i >= n {
		i = period - i
	}
	return i
}
