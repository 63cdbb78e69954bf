package model

// Operators that address elements by index tensors: GatherElements, GatherND, and their
// inverses ScatterElements (Scatter before opset 11) and ScatterND. Indices are INT32 or INT64
// and may be negative (counted from the end of their axis, as numpy does); an index out of
// range is a run-time error, never a clamp.

import (
	"fmt"
	"slices"
)

func init() {
	register(
		opImpl{domain: domainONNX, name: "GatherElements", minOpset: 11, maxOpset: maxOpsetONNX, compile: compileGatherElements},
		opImpl{domain: domainONNX, name: "Scatter", minOpset: 9, maxOpset: 10, compile: compileScatterElements},
		opImpl{domain: domainONNX, name: "ScatterElements", minOpset: 11, maxOpset: maxOpsetONNX, compile: compileScatterElements},
		opImpl{domain: domainONNX, name: "GatherND", minOpset: 11, maxOpset: maxOpsetONNX, compile: compileGatherND},
		opImpl{domain: domainONNX, name: "ScatterND", minOpset: 11, maxOpset: maxOpsetONNX, compile: compileScatterND},
	)
}

// indexInput reads an index tensor as int64s into scratch.
func indexInput(x *exec, scratch int, t *Tensor) ([]int64, error) {
	s := x.scratch(scratch)
	if err := castInto(s, t, Int64); err != nil {
		return nil, err
	}
	return s.Int64[:t.Len()], nil
}

// resolveIndex turns an index into an offset along an axis of size dim.
func resolveIndex(i int64, dim int) (int, error) {
	if i < -int64(dim) || i >= int64(dim) {
		return 0, fmt.Errorf("index %d is out of range for an axis of size %d", i, dim)
	}
	if i < 0 {
		i += int64(dim)
	}
	return int(i), nil
}

// strides are the row-major strides of shape.
func strides(dst *[maxRank]int, shape []int) []int {
	s := dst[:len(shape)]
	step := 1
	for d := len(shape) - 1; d >= 0; d-- {
		s[d] = step
		step *= shape[d]
	}
	return s
}

func compileGatherElements(n *nodeCtx) (kernel, error) {
	if err := n.arity(2, 2, 1, 1); err != nil {
		return nil, err
	}
	if err := n.needTypes(1, Int32, Int64); err != nil {
		return nil, err
	}
	data, idx := n.shape(0), n.shape(1)
	if len(data) != len(idx) || len(data) == 0 {
		return nil, fmt.Errorf("indices of shape %s do not have the rank of data of shape %s", shapeString(idx), shapeString(data))
	}
	axis, err := n.axis("axis", 0, len(data))
	if err != nil {
		return nil, err
	}
	n.setOutTensor(0, n.dtype(0), slices.Clone(idx))
	return kernelFunc(func(x *exec, in, out []*Tensor) error {
		t, o := in[0], out[0]
		offs, err := elementOffsets(x, axis, t.Shape, in[1])
		if err != nil {
			return err
		}
		if err := o.reset(t.DType, in[1].Shape...); err != nil {
			return err
		}
		for i, off := range offs {
			copyElems(o, i, t, off, 1)
		}
		return nil
	}), nil
}

// elementOffsets maps each position of indices to the offset in a tensor of shape data that
// it addresses: its own position, with its coordinate along axis replaced by its index.
func elementOffsets(x *exec, axis int, data []int, indices *Tensor) ([]int, error) {
	is := indices.Shape
	if len(is) != len(data) {
		return nil, fmt.Errorf("indices of shape %v do not have the rank of data of shape %v", is, data)
	}
	for d := range is {
		if d != axis && is[d] > data[d] {
			return nil, fmt.Errorf("indices of shape %v exceed data of shape %v along axis %d", is, data, d)
		}
	}
	vals, err := indexInput(x, 0, indices)
	if err != nil {
		return nil, err
	}
	offs := make([]int, len(vals))
	if len(vals) == 0 {
		return offs, nil
	}
	var sb [maxRank]int
	st := strides(&sb, data)
	idx := make([]int, len(is))
	for i, v := range vals {
		at, err := resolveIndex(v, data[axis])
		if err != nil {
			return nil, err
		}
		off := 0
		for d, c := range idx {
			if d == axis {
				c = at
			}
			off += c * st[d]
		}
		offs[i] = off
		next(idx, is)
	}
	return offs, nil
}

// scatterReduction is how ScatterElements and ScatterND combine an update with what is there.
type scatterReduction uint8

const (
	scatterNone scatterReduction = iota
	scatterAdd
	scatterMul
	scatterMax
	scatterMin
)

// compileScatter checks what ScatterElements and ScatterND share — data, indices of the given
// types, updates of data's type — and reads the reduction attribute (opset 16: add, mul; 18:
// max, min).
func compileScatter(n *nodeCtx, indexTypes ...DType) (scatterReduction, error) {
	if err := n.arity(3, 3, 1, 1); err != nil {
		return 0, err
	}
	if err := n.needTypes(1, indexTypes...); err != nil {
		return 0, err
	}
	if err := n.sameType(2); err != nil {
		return 0, err
	}
	r, err := n.attrString("reduction", "none")
	if err != nil {
		return 0, err
	}
	red := map[string]scatterReduction{"none": scatterNone, "add": scatterAdd, "mul": scatterMul, "max": scatterMax, "min": scatterMin}
	since := map[scatterReduction]int64{scatterAdd: 16, scatterMul: 16, scatterMax: 18, scatterMin: 18}
	v, ok := red[r]
	if !ok || n.opset < since[v] {
		return 0, fmt.Errorf("reduction %q is not defined at opset %d", r, n.opset)
	}
	if v != scatterNone {
		if err := n.needTypes(0, numericTypes...); err != nil {
			return 0, err
		}
	}
	return v, nil
}

// scatterInto combines cnt updates from sOff on into o from dOff on.
func scatterInto(red scatterReduction, o *Tensor, dOff int, u *Tensor, sOff, cnt int) {
	if red == scatterNone {
		copyElems(o, dOff, u, sOff, cnt)
		return
	}
	scatterFns[o.DType](red, o, dOff, u, sOff, cnt)
}

var scatterFns = numeric(scatterOn[float32], scatterOn[float64], scatterOn[int8], scatterOn[int16], scatterOn[int32],
	scatterOn[int64], scatterOn[uint8], scatterOn[uint16], scatterOn[uint32], scatterOn[uint64])

func scatterOn[T number](red scatterReduction, o *Tensor, dOff int, u *Tensor, sOff, cnt int) {
	dst, src := data[T](o)[dOff:dOff+cnt], data[T](u)[sOff:sOff+cnt]
	for i, v := range src {
		switch red {
		case scatterAdd:
			dst[i] += v
		case scatterMul:
			dst[i] *= v
		case scatterMax:
			dst[i] = max(dst[i], v)
		case scatterMin:
			dst[i] = min(dst[i], v)
		}
	}
}

func compileScatterElements(n *nodeCtx) (kernel, error) {
	red, err := compileScatter(n, Int32, Int64)
	if err != nil {
		return nil, err
	}
	data, idx, upd := n.shape(0), n.shape(1), n.shape(2)
	if len(data) != len(idx) || len(idx) != len(upd) || len(data) == 0 {
		return nil, fmt.Errorf("data %s, indices %s and updates %s must have one rank", shapeString(data), shapeString(idx), shapeString(upd))
	}
	axis, err := n.axis("axis", 0, len(data))
	if err != nil {
		return nil, err
	}
	n.setOutTensor(0, n.dtype(0), slices.Clone(data))
	return kernelFunc(func(x *exec, in, out []*Tensor) error {
		t, u, o := in[0], in[2], out[0]
		if !slices.Equal(in[1].Shape, u.Shape) {
			return fmt.Errorf("updates of shape %v do not match indices of shape %v", u.Shape, in[1].Shape)
		}
		offs, err := elementOffsets(x, axis, t.Shape, in[1])
		if err != nil {
			return err
		}
		if err := o.copyFrom(t); err != nil {
			return err
		}
		for i, off := range offs {
			scatterInto(red, o, off, u, i, 1)
		}
		return nil
	}), nil
}

// ndIndexShape checks GatherND's and ScatterND's index tensor at load: the length of its last
// axis, the depth of each index tuple, must be known.
func ndIndexShape(n *nodeCtx, data, idx []int, batchDims int) (int, error) {
	if len(idx) == 0 {
		return 0, fmt.Errorf("indices is a scalar; want tuples along a last axis")
	}
	k := idx[len(idx)-1]
	if k < 0 {
		return 0, unsupported("the length of the indices' last axis is known only at run time")
	}
	if batchDims+k > len(data) {
		return 0, fmt.Errorf("index tuples of %d values address data of rank %d past %d batch axes", k, len(data), batchDims)
	}
	return k, nil
}

// ndOffsets resolves index tuples (the last axis of indices, batchDims leading axes shared with
// data) to offsets of blocks in data, each block the size returned.
func ndOffsets(x *exec, data []int, indices *Tensor, batchDims int) (offs []int, block int, err error) {
	is := indices.Shape
	if len(is) == 0 || len(is)-1 < batchDims || !slices.Equal(is[:batchDims], data[:batchDims]) {
		return nil, 0, fmt.Errorf("indices of shape %v do not fit data of shape %v with %d batch axes", is, data, batchDims)
	}
	k := is[len(is)-1]
	if batchDims+k > len(data) {
		return nil, 0, fmt.Errorf("index tuples of %d values address data of rank %d", k, len(data))
	}
	vals, err := indexInput(x, 0, indices)
	if err != nil {
		return nil, 0, err
	}
	var sb [maxRank]int
	st := strides(&sb, data)
	block = product(data[batchDims+k:])
	tuples := product(is[:len(is)-1])
	perBatch := max(product(is[batchDims:len(is)-1]), 1)
	batchStride := product(data[batchDims:])
	offs = make([]int, tuples)
	for j := range offs {
		off := (j / perBatch) * batchStride
		for d := range k {
			at, err := resolveIndex(vals[j*k+d], data[batchDims+d])
			if err != nil {
				return nil, 0, err
			}
			off += at * st[batchDims+d]
		}
		offs[j] = off
	}
	return offs, block, nil
}

func compileGatherND(n *nodeCtx) (kernel, error) {
	if err := n.arity(2, 2, 1, 1); err != nil {
		return nil, err
	}
	if err := n.needTypes(1, Int64); err != nil {
		return nil, err
	}
	b, err := n.attrInt("batch_dims", 0)
	if err != nil {
		return nil, err
	}
	data, idx := n.shape(0), n.shape(1)
	if b < 0 || b >= int64(min(len(data), len(idx))) {
		return nil, fmt.Errorf("batch_dims %d is out of range for data %s and indices %s", b, shapeString(data), shapeString(idx))
	}
	batchDims := int(b)
	k, err := ndIndexShape(n, data, idx, batchDims)
	if err != nil {
		return nil, err
	}
	shape := append(slices.Clone(idx[:len(idx)-1]), data[batchDims+k:]...)
	if len(shape) > maxRank {
		return nil, fmt.Errorf("output rank %d is more than the %d supported", len(shape), maxRank)
	}
	n.setOutTensor(0, n.dtype(0), shape)
	return kernelFunc(func(x *exec, in, out []*Tensor) error {
		t, o := in[0], out[0]
		offs, block, err := ndOffsets(x, t.Shape, in[1], batchDims)
		if err != nil {
			return err
		}
		var sb [maxRank]int
		is := in[1].Shape
		shape := append(append(sb[:0], is[:len(is)-1]...), t.Shape[batchDims+is[len(is)-1]:]...)
		if err := o.reset(t.DType, shape...); err != nil {
			return err
		}
		for j, off := range offs {
			copyElems(o, j*block, t, off, block)
		}
		return nil
	}), nil
}

func compileScatterND(n *nodeCtx) (kernel, error) {
	red, err := compileScatter(n, Int64)
	if err != nil {
		return nil, err
	}
	data, idx := n.shape(0), n.shape(1)
	if _, err := ndIndexShape(n, data, idx, 0); err != nil {
		return nil, err
	}
	n.setOutTensor(0, n.dtype(0), slices.Clone(data))
	return kernelFunc(func(x *exec, in, out []*Tensor) error {
		t, u, o := in[0], in[2], out[0]
		offs, block, err := ndOffsets(x, t.Shape, in[1], 0)
		if err != nil {
			return err
		}
		is := in[1].Shape
		want := append(slices.Clone(is[:len(is)-1]), t.Shape[is[len(is)-1]:]...)
		if !slices.Equal(u.Shape, want) {
			return fmt.Errorf("updates have shape %v, want %v", u.Shape, want)
		}
		if err := o.copyFrom(t); err != nil {
			return err
		}
		for j, off := range offs {
			scatterInto(red, o, off, u, j*block, block)
		}
		return nil
	}), nil
}
