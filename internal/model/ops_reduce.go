package model

// Reductions: ReduceSum, ReduceMean, ReduceMax, ReduceMin, ReduceProd, ReduceL1, ReduceL2,
// ReduceLogSum, ReduceLogSumExp, ReduceSumSquare; ArgMax, ArgMin; TopK.

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"slices"
)

type reduceKind uint8

const (
	redSum reduceKind = iota
	redMean
	redMax
	redMin
	redProd
	redL1
	redL2
	redLogSum
	redLogSumExp
	redSumSquare
)

func init() {
	kinds := map[string]reduceKind{
		"ReduceSum": redSum, "ReduceMean": redMean, "ReduceMax": redMax, "ReduceMin": redMin,
		"ReduceProd": redProd, "ReduceL1": redL1, "ReduceL2": redL2, "ReduceLogSum": redLogSum,
		"ReduceLogSumExp": redLogSumExp, "ReduceSumSquare": redSumSquare,
	}
	for name, kind := range kinds {
		// The axes became an input at opset 13 for ReduceSum, at 18 for the others.
		axesInput := int64(18)
		if kind == redSum {
			axesInput = 13
		}
		register(opImpl{domain: domainONNX, name: name, minOpset: 1, maxOpset: maxOpsetONNX,
			compile: func(n *nodeCtx) (kernel, error) { return compileReduce(n, kind, n.opset >= axesInput) }})
	}
	register(
		opImpl{domain: domainONNX, name: "ArgMax", minOpset: 1, maxOpset: maxOpsetONNX,
			compile: func(n *nodeCtx) (kernel, error) { return compileArg(n, true) }},
		opImpl{domain: domainONNX, name: "ArgMin", minOpset: 1, maxOpset: maxOpsetONNX,
			compile: func(n *nodeCtx) (kernel, error) { return compileArg(n, false) }},
		opImpl{domain: domainONNX, name: "TopK", minOpset: 1, maxOpset: maxOpsetONNX, compile: compileTopK},
	)
}

func compileReduce(n *nodeCtx, kind reduceKind, axesInput bool) (kernel, error) {
	maxIn := 1
	if axesInput {
		maxIn = 2
	}
	if err := n.arity(1, maxIn, 1, 1); err != nil {
		return nil, err
	}
	types := []DType{Float32, Float64, Int32, Int64, Uint32, Uint64}
	if kind == redMax || kind == redMin {
		types = numericTypes
	}
	if err := n.needTypes(0, types...); err != nil {
		return nil, err
	}
	keep, err := n.attrInt("keepdims", 1)
	if err != nil {
		return nil, err
	}
	noop := int64(0)
	if axesInput {
		if noop, err = n.attrInt("noop_with_empty_axes", 0); err != nil {
			return nil, err
		}
	}
	in := n.shape(0)
	var axes []int64
	known := true
	if axesInput {
		if n.has(1) {
			if err := n.needTypes(1, Int64); err != nil {
				return nil, err
			}
			axes, known = n.ints(1)
		}
	} else if axes, _, err = n.attrInts("axes"); err != nil {
		return nil, err
	}
	var shape []int
	switch {
	case known:
		mask, err := reduceMask(axes, len(in), noop != 0)
		if err != nil {
			return nil, err
		}
		for d, s := range in {
			switch {
			case !mask[d]:
				shape = append(shape, s)
			case keep != 0:
				shape = append(shape, 1)
			}
		}
	case keep != 0:
		for range in {
			shape = append(shape, n.sym())
		}
	default:
		na := n.shape(1)
		if len(na) != 1 || na[0] < 0 || (na[0] == 0 && noop != 0) {
			return nil, unsupported("axes of shape %s computed at run time: the output's rank would be known only then", shapeString(na))
		}
		if na[0] == 0 {
			shape = []int{}
		} else {
			for range len(in) - na[0] {
				shape = append(shape, n.sym())
			}
		}
	}
	n.setOutTensor(0, n.dtype(0), shape)
	return &reduceKernel{kind: kind, keep: keep != 0, noop: noop != 0, axes: slices.Clone(axes), runtimeAxes: !known, dtype: n.dtype(0)}, nil
}

// reduceMask marks the reduced axes: the given ones, or all when none are given (unless noop).
func reduceMask(axes []int64, rank int, noop bool) ([]bool, error) {
	mask := make([]bool, rank)
	if len(axes) == 0 {
		for d := range mask {
			mask[d] = !noop
		}
		return mask, nil
	}
	for _, a := range axes {
		d, err := normAxis(a, rank)
		if err != nil {
			return nil, err
		}
		mask[d] = true
	}
	return mask, nil
}

type reduceKernel struct {
	kind        reduceKind
	keep, noop  bool
	axes        []int64
	runtimeAxes bool // the axes are an input computed at run time
	dtype       DType
}

func (k *reduceKernel) run(x *exec, in, out []*Tensor) error {
	t := in[0]
	axes := k.axes
	if len(in) > 1 && in[1] != nil {
		axes = data[int64](in[1])
	}
	w := x.reducer()
	if err := w.init(x, t.Shape, axes, k.noop, k.keep); err != nil {
		return err
	}
	o := out[0]
	if err := o.reset(k.dtype, w.out[:w.nout]...); err != nil {
		return err
	}
	reduceFns[k.dtype](k.kind, w, o, t)
	return nil
}

var reduceFns = numeric(reduceFloatOn[float32], reduceFloatOn[float64], reduceIntOn[int8], reduceIntOn[int16],
	reduceIntOn[int32], reduceIntOn[int64], reduceIntOn[uint8], reduceIntOn[uint16], reduceIntOn[uint32], reduceIntOn[uint64])

func reduceFloatOn[T float32 | float64](kind reduceKind, w *reduceWalk, o, x *Tensor) {
	reduceFloat(kind, w, data[T](o), data[T](x))
}

func reduceIntOn[T number](kind reduceKind, w *reduceWalk, o, x *Tensor) {
	reduceInt(kind, w, data[T](o), data[T](x))
}

// reduceWalk visits, for every output element, the input elements reduced into it: base(o)
// is the offset of the first, rel the offsets of all relative to it.
type reduceWalk struct {
	// out[:nout] is the output shape (an array, not a slice of itself, so that a walk stays on
	// the stack).
	out  [maxRank]int
	nout int
	rel  []int32
	// kept dimensions (sizes and input strides), walked in order for the bases
	keptDims, keptStrides [maxRank]int
	nkept                 int
	idx                   [maxRank]int
	outLen                int
}

func (w *reduceWalk) init(x *exec, shape []int, axes []int64, noop, keep bool) error {
	rank := len(shape)
	var mask [maxRank]bool
	if len(axes) == 0 {
		for d := range rank {
			mask[d] = !noop
		}
	}
	for _, a := range axes {
		d, err := normAxis(a, rank)
		if err != nil {
			return err
		}
		mask[d] = true
	}
	var strides [maxRank]int
	st := 1
	for d := rank - 1; d >= 0; d-- {
		strides[d] = st
		st *= shape[d]
	}
	w.nout = 0
	w.nkept = 0
	boxSize := 1
	for d := range rank {
		if mask[d] {
			boxSize *= shape[d]
			if keep {
				w.out[w.nout] = 1
				w.nout++
			}
			continue
		}
		w.out[w.nout] = shape[d]
		w.nout++
		w.keptDims[w.nkept], w.keptStrides[w.nkept] = shape[d], strides[d]
		w.nkept++
	}
	w.outLen = product(w.out[:w.nout])
	relT := x.scratch(0)
	if err := relT.reset(Int32, boxSize); err != nil {
		return err
	}
	w.rel = relT.Int32[:boxSize]
	if boxSize == 0 {
		return nil
	}
	// The offsets of the reduced sub-box, in input order.
	var idx, dims, rstr [maxRank]int
	nr := 0
	for d := range rank {
		if mask[d] {
			dims[nr], rstr[nr] = shape[d], strides[d]
			nr++
		}
	}
	for i := range w.rel {
		off := 0
		for d := range nr {
			off += idx[d] * rstr[d]
		}
		w.rel[i] = int32(off)
		next(idx[:nr], dims[:nr])
	}
	w.idx = [maxRank]int{}
	return nil
}

// base returns the input offset of the next output element's first reduced element.
func (w *reduceWalk) base() int {
	off := 0
	for d := range w.nkept {
		off += w.idx[d] * w.keptStrides[d]
	}
	next(w.idx[:w.nkept], w.keptDims[:w.nkept])
	return off
}

func reduceFloat[T float32 | float64](kind reduceKind, w *reduceWalk, o, x []T) {
	count := float64(len(w.rel))
	for i := range w.outLen {
		b := w.base()
		var acc float64
		switch kind {
		case redMax:
			acc = math.Inf(-1)
			for _, r := range w.rel {
				if v := float64(x[b+int(r)]); v > acc || v != v {
					acc = v
				}
			}
		case redMin:
			acc = math.Inf(1)
			for _, r := range w.rel {
				if v := float64(x[b+int(r)]); v < acc || v != v {
					acc = v
				}
			}
		case redProd:
			acc = 1
			for _, r := range w.rel {
				acc *= float64(x[b+int(r)])
			}
		case redL1:
			for _, r := range w.rel {
				acc += math.Abs(float64(x[b+int(r)]))
			}
		case redL2, redSumSquare:
			for _, r := range w.rel {
				v := float64(x[b+int(r)])
				acc += v * v
			}
			if kind == redL2 {
				acc = math.Sqrt(acc)
			}
		case redLogSumExp:
			m := math.Inf(-1)
			for _, r := range w.rel {
				m = max(m, float64(x[b+int(r)]))
			}
			if math.IsInf(m, 0) {
				m = 0
			}
			for _, r := range w.rel {
				acc += math.Exp(float64(x[b+int(r)]) - m)
			}
			acc = m + math.Log(acc)
		default: // sum, mean, log-sum
			for _, r := range w.rel {
				acc += float64(x[b+int(r)])
			}
			switch kind {
			case redMean:
				acc /= count
			case redLogSum:
				acc = math.Log(acc)
			}
		}
		o[i] = T(acc)
	}
}

func reduceInt[T number](kind reduceKind, w *reduceWalk, o, x []T) {
	for i := range w.outLen {
		b := w.base()
		var acc T
		switch kind {
		case redMax:
			acc = minOf[T]()
			for _, r := range w.rel {
				acc = max(acc, x[b+int(r)])
			}
		case redMin:
			acc = maxOf[T]()
			for _, r := range w.rel {
				acc = min(acc, x[b+int(r)])
			}
		case redProd:
			acc = 1
			for _, r := range w.rel {
				acc *= x[b+int(r)]
			}
		case redL1:
			for _, r := range w.rel {
				v := x[b+int(r)]
				if v < 0 {
					v = -v
				}
				acc += v
			}
		case redSumSquare:
			for _, r := range w.rel {
				v := x[b+int(r)]
				acc += v * v
			}
		case redL2, redLogSum, redLogSumExp:
			var f float64
			for _, r := range w.rel {
				v := float64(x[b+int(r)])
				switch kind {
				case redL2:
					f += v * v
				case redLogSum:
					f += v
				default:
					f += math.Exp(v)
				}
			}
			if kind == redL2 {
				acc = T(math.Sqrt(f))
			} else {
				acc = T(math.Log(f))
			}
		default:
			for _, r := range w.rel {
				acc += x[b+int(r)]
			}
			if kind == redMean && len(w.rel) > 0 {
				acc /= T(len(w.rel))
			}
		}
		o[i] = acc
	}
}

func compileArg(n *nodeCtx, isMax bool) (kernel, error) {
	if err := n.arity(1, 1, 1, 1); err != nil {
		return nil, err
	}
	if err := n.needTypes(0, numericTypes...); err != nil {
		return nil, err
	}
	in := n.shape(0)
	axis, err := n.axis("axis", 0, len(in))
	if err != nil {
		return nil, err
	}
	keep, err := n.attrInt("keepdims", 1)
	if err != nil {
		return nil, err
	}
	last := int64(0)
	if n.opset >= 12 {
		if last, err = n.attrInt("select_last_index", 0); err != nil {
			return nil, err
		}
	}
	shape := slices.Clone(in)
	if keep != 0 {
		shape[axis] = 1
	} else {
		shape = slices.Delete(shape, axis, axis+1)
	}
	n.setOutTensor(0, Int64, shape)
	return &argKernel{axis: axis, keep: keep != 0, max: isMax, last: last != 0}, nil
}

type argKernel struct {
	axis            int
	keep, max, last bool
}

func (k *argKernel) run(x *exec, in, out []*Tensor) error {
	t := in[0]
	if t.Shape[k.axis] == 0 {
		return errors.New("ArgMax and ArgMin of an empty axis")
	}
	w := x.reducer()
	if err := w.init(x, t.Shape, []int64{int64(k.axis)}, false, k.keep); err != nil {
		return err
	}
	o := out[0]
	if err := o.reset(Int64, w.out[:w.nout]...); err != nil {
		return err
	}
	argFns[t.DType](k, w, data[int64](o), t)
	return nil
}

var argFns = numeric(argOn[float32], argOn[float64], argOn[int8], argOn[int16], argOn[int32], argOn[int64],
	argOn[uint8], argOn[uint16], argOn[uint32], argOn[uint64])

func argOn[T number](k *argKernel, w *reduceWalk, o []int64, x *Tensor) { argT(k, w, o, data[T](x)) }

func argT[T number](k *argKernel, w *reduceWalk, o []int64, x []T) {
	for i := range w.outLen {
		b := w.base()
		best, at := x[b], 0
		for j, r := range w.rel {
			v := x[b+int(r)]
			better := v > best
			if !k.max {
				better = v < best
			}
			if better || (k.last && v == best) {
				best, at = v, j
			}
		}
		o[i] = int64(at)
	}
}

func compileTopK(n *nodeCtx) (kernel, error) {
	attrK := n.opset < 10
	if attrK {
		if err := n.arity(1, 1, 2, 2); err != nil {
			return nil, err
		}
	} else if err := n.arity(2, 2, 2, 2); err != nil {
		return nil, err
	}
	if err := n.needTypes(0, numericTypes...); err != nil {
		return nil, err
	}
	in := n.shape(0)
	axis, err := n.axis("axis", -1, len(in))
	if err != nil {
		return nil, err
	}
	largest, sorted := int64(1), int64(1)
	if n.opset >= 11 {
		if largest, err = n.attrInt("largest", 1); err != nil {
			return nil, err
		}
		if sorted, err = n.attrInt("sorted", 1); err != nil {
			return nil, err
		}
	}
	_ = sorted // an unsorted result may come in any order; this one is sorted
	kval := -1
	if attrK {
		kk, err := n.attrInt("k", -1)
		if err != nil {
			return nil, err
		}
		if kk < 0 {
			return nil, errors.New("attribute k is missing or negative")
		}
		kval = int(min(kk, maxElements))
	} else {
		if err := n.needTypes(1, Int64); err != nil {
			return nil, err
		}
		if ks, ok := n.ints(1); ok {
			if len(ks) != 1 || ks[0] < 0 {
				return nil, fmt.Errorf("k is %v; want one non-negative value", ks)
			}
			kval = int(min(ks[0], maxElements))
		}
	}
	shape := slices.Clone(in)
	switch {
	case kval < 0:
		shape[axis] = n.sym()
	case in[axis] >= 0 && kval > in[axis]:
		return nil, fmt.Errorf("k=%d is more than the %d elements of axis %d", kval, in[axis], axis)
	default:
		shape[axis] = kval
	}
	n.setOutTensor(0, n.dtype(0), shape)
	n.setOutTensor(1, Int64, slices.Clone(shape))
	return &topKKernel{axis: axis, k: kval, largest: largest != 0}, nil
}

type topKKernel struct {
	axis    int
	k       int
	largest bool
}

func (k *topKKernel) run(x *exec, in, out []*Tensor) error {
	t := in[0]
	kv := k.k
	if kv < 0 {
		ks := data[int64](in[1])
		if len(ks) != 1 || ks[0] < 0 {
			return fmt.Errorf("k is %v; want one non-negative value", ks)
		}
		kv = int(min(ks[0], maxElements))
	}
	dim := t.Shape[k.axis]
	if kv > dim {
		return fmt.Errorf("k=%d is more than the %d elements of axis %d", kv, dim, k.axis)
	}
	var sb [maxRank]int
	shape := append(sb[:0], t.Shape...)
	shape[k.axis] = kv
	if err := out[0].reset(t.DType, shape...); err != nil {
		return err
	}
	if err := out[1].reset(Int64, shape...); err != nil {
		return err
	}
	w := x.reducer()
	if err := w.init(x, t.Shape, []int64{int64(k.axis)}, false, true); err != nil {
		return err
	}
	order := x.scratch(1)
	if err := order.reset(Int32, dim); err != nil {
		return err
	}
	inner := product(t.Shape[k.axis+1:])
	topKFns[t.DType](k, w, kv, inner, order.Int32, t, out[0], data[int64](out[1]))
	return nil
}

var topKFns = numeric(topKOn[float32], topKOn[float64], topKOn[int8], topKOn[int16], topKOn[int32], topKOn[int64],
	topKOn[uint8], topKOn[uint16], topKOn[uint32], topKOn[uint64])

func topKOn[T number](k *topKKernel, w *reduceWalk, kv, inner int, order []int32, x, vals *Tensor, idx []int64) {
	topKT(k, w, kv, inner, order, data[T](x), data[T](vals), idx)
}

// topKT sorts each slice along the axis (larger or smaller first, ties by lower index, as
// onnxruntime and the ONNX reference order them) and keeps the first kv.
func topKT[T number](k *topKKernel, w *reduceWalk, kv, inner int, order []int32, x, vals []T, idx []int64) {
	for i := range w.outLen {
		b := w.base()
		for j := range order {
			order[j] = int32(j)
		}
		slices.SortStableFunc(order, func(p, q int32) int {
			c := cmp.Compare(x[b+int(w.rel[p])], x[b+int(w.rel[q])])
			if k.largest {
				return -c
			}
			return c
		})
		// Output element i's slice starts at the same outer/inner position with kv along the axis.
		outer, in := i/inner, i%inner
		for j := range kv {
			pos := (outer*kv+j)*inner + in
			vals[pos] = x[b+int(w.rel[order[j]])]
			idx[pos] = int64(order[j])
		}
	}
}
