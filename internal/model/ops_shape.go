package model

// Operators that change shapes without computing new values: Identity, Dropout (inference),
// Reshape, Flatten, Squeeze, Unsqueeze (views, no copy), and Shape, Size.

import (
	"errors"
	"fmt"
	"slices"
)

func init() {
	register(
		opImpl{domain: domainONNX, name: "Identity", minOpset: 1, maxOpset: maxOpsetONNX, compile: compileIdentity},
		opImpl{domain: domainONNX, name: "Dropout", minOpset: 7, maxOpset: maxOpsetONNX, compile: compileDropout},
		opImpl{domain: domainONNX, name: "Reshape", minOpset: 5, maxOpset: maxOpsetONNX, compile: compileReshape},
		opImpl{domain: domainONNX, name: "Flatten", minOpset: 1, maxOpset: maxOpsetONNX, compile: compileFlatten},
		opImpl{domain: domainONNX, name: "Squeeze", minOpset: 1, maxOpset: maxOpsetONNX, compile: compileSqueeze},
		opImpl{domain: domainONNX, name: "Unsqueeze", minOpset: 1, maxOpset: maxOpsetONNX, compile: compileUnsqueeze},
		opImpl{domain: domainONNX, name: "Shape", minOpset: 1, maxOpset: maxOpsetONNX, compile: compileShape},
		opImpl{domain: domainONNX, name: "Size", minOpset: 1, maxOpset: maxOpsetONNX, compile: compileSize},
	)
}

// viewKernel makes its output a view of input 0 under the shape newShape computes from the
// inputs at run time (into the output's own shape storage, which a state keeps).
type viewKernel struct {
	newShape func(dst *[maxRank]int, in []*Tensor) ([]int, error)
}

func (k *viewKernel) run(x *exec, in, out []*Tensor) error {
	buf := x.shapeBuf()
	shape, err := k.newShape(buf, in)
	if err != nil {
		return err
	}
	if product(shape) != in[0].Len() {
		return fmt.Errorf("cannot view %s as %s", shapeString(in[0].Shape), shapeString(shape))
	}
	out[0].view(in[0], shape)
	return nil
}

func sameShape(dst *[maxRank]int, in []*Tensor) ([]int, error) {
	return append(dst[:0], in[0].Shape...), nil
}

func compileIdentity(n *nodeCtx) (kernel, error) {
	if err := n.arity(1, 1, 1, 1); err != nil {
		return nil, err
	}
	n.setOut(0, n.typ(0))
	n.setSym(0, n.in[0].sym)
	n.setView(0)
	return &viewKernel{newShape: sameShape}, nil
}

// compileDropout: inference only, so Dropout is Identity and its mask all true.
func compileDropout(n *nodeCtx) (kernel, error) {
	if err := n.arity(1, 3, 1, 2); err != nil {
		return nil, err
	}
	if n.opset < 12 {
		if mode, err := n.attrInt("is_test", 1); err != nil || mode == 0 {
			return nil, unsupported("Dropout in training mode (is_test=0)")
		}
	}
	if n.has(2) {
		if err := n.needTypes(2, Bool); err != nil {
			return nil, err
		}
		k := n.konst(2)
		if k == nil {
			return nil, unsupported("Dropout's training_mode is computed at run time; this runtime runs Dropout for inference only")
		}
		if k.Len() != 1 {
			return nil, fmt.Errorf("training_mode has %d values, want 1", k.Len())
		}
		if data[bool](k)[0] {
			return nil, unsupported("Dropout in training mode (training_mode=true)")
		}
	}
	mask := n.numOut() > 1 && n.node.Outputs[1] != ""
	if mask && n.opset < 10 {
		return nil, unsupported("Dropout's mask output before opset 10")
	}
	n.setOut(0, n.typ(0))
	n.setView(0)
	if n.numOut() > 1 {
		n.setOutTensor(1, Bool, n.shape(0))
	}
	return kernelFunc(func(x *exec, in, out []*Tensor) error {
		if len(out) > 1 {
			if err := out[1].reset(Bool, in[0].Shape...); err != nil {
				return err
			}
			for i := range out[1].Bool[:out[1].Len()] {
				out[1].Bool[i] = true
			}
		}
		out[0].view(in[0], in[0].Shape)
		return nil
	}), nil
}

// symProduct is a product of sizes at load: a known factor times symbols.
type symProduct struct {
	k    int
	syms []int
}

func productOf(dims []int) symProduct {
	p := symProduct{k: 1}
	for _, d := range dims {
		if d < 0 {
			p.syms = append(p.syms, d)
		} else {
			p.k *= d
		}
	}
	return p
}

// dim turns a product into one dimension: known, a single symbol, or a fresh symbol.
func (p symProduct) dim(n *nodeCtx) int {
	switch {
	case len(p.syms) == 0:
		return p.k
	case len(p.syms) == 1 && p.k == 1:
		return p.syms[0]
	case p.k == 0:
		return 0
	}
	return n.sym()
}

func sortedSyms(p symProduct) []int {
	s := slices.Clone(p.syms)
	slices.Sort(s)
	return s
}

// quotient is the dimension p/q (Reshape's -1): symbols cancel; what is left decides.
func quotient(n *nodeCtx, p, q symProduct) (int, error) {
	rest := slices.Clone(p.syms)
	for _, s := range q.syms {
		i := slices.Index(rest, s)
		if i < 0 {
			return n.sym(), nil
		}
		rest = slices.Delete(rest, i, i+1)
	}
	if len(rest) == 0 {
		if q.k == 0 || p.k%q.k != 0 {
			return 0, fmt.Errorf("%d elements cannot be split into parts of %d", p.k, q.k)
		}
		return p.k / q.k, nil
	}
	if len(rest) == 1 && p.k == q.k {
		return rest[0], nil
	}
	return n.sym(), nil
}

func compileReshape(n *nodeCtx) (kernel, error) {
	if err := n.arity(2, 2, 1, 1); err != nil {
		return nil, err
	}
	if err := n.needTypes(1, Int64); err != nil {
		return nil, err
	}
	allowZero := int64(0)
	if n.opset >= 14 {
		var err error
		if allowZero, err = n.attrInt("allowzero", 0); err != nil {
			return nil, err
		}
	}
	in := n.shape(0)
	ss := n.shape(1)
	if len(ss) != 1 || ss[0] < 0 {
		return nil, unsupported("the shape input has shape %s: the output's rank would be known only at run time", shapeString(ss))
	}
	out := make([]int, ss[0])
	if vals, ok := n.symInts(1); ok && len(vals) == len(out) {
		infer := -1
		known := symProduct{k: 1}
		for i, v := range vals {
			switch {
			case v.sym < 0:
				out[i] = v.sym
			case v.v == 0 && allowZero == 0:
				if i >= len(in) {
					return nil, fmt.Errorf("shape %v copies axis %d, which input %s does not have", symString(vals), i, shapeString(in))
				}
				out[i] = in[i]
			case v.v == -1 && infer >= 0:
				return nil, fmt.Errorf("shape %v has more than one -1", symString(vals))
			case v.v == -1:
				infer = i
				continue
			case v.v < -1 || v.v > maxElements:
				return nil, fmt.Errorf("shape %v has an invalid dimension %d", symString(vals), v.v)
			default:
				out[i] = int(v.v)
			}
			if out[i] < 0 {
				known.syms = append(known.syms, out[i])
			} else {
				known.k *= out[i]
			}
		}
		if infer >= 0 {
			d, err := quotient(n, productOf(in), known)
			if err != nil {
				return nil, fmt.Errorf("cannot reshape %s into %v: %w", shapeString(in), symString(vals), err)
			}
			out[infer] = d
		} else if p, q := productOf(in), productOf(out); slices.Equal(sortedSyms(p), sortedSyms(q)) && p.k != q.k {
			return nil, fmt.Errorf("cannot reshape %s into %v", shapeString(in), symString(vals))
		}
	} else {
		for i := range out {
			out[i] = n.sym()
		}
	}
	n.setOut(0, tensorType(n.dtype(0), out))
	if n.typ(0).kind != kindTensor {
		return nil, unsupported("Reshape takes a tensor")
	}
	n.setView(0)
	zero := allowZero != 0
	return &viewKernel{newShape: func(dst *[maxRank]int, in []*Tensor) ([]int, error) {
		return reshapeTarget(dst, in[0].Shape, data[int64](in[1]), zero)
	}}, nil
}

// reshapeTarget resolves Reshape's shape argument against an input shape at run time.
func reshapeTarget(dst *[maxRank]int, in []int, spec []int64, allowZero bool) ([]int, error) {
	if len(spec) > maxRank {
		return nil, fmt.Errorf("shape %v has more than %d dimensions", spec, maxRank)
	}
	out := dst[:len(spec)]
	infer, known := -1, 1
	for i, d := range spec {
		switch {
		case d == 0 && !allowZero:
			if i >= len(in) {
				return nil, fmt.Errorf("shape %v copies axis %d, which input %v does not have", spec, i, in)
			}
			out[i] = in[i]
		case d == -1 && infer < 0:
			infer = i
			continue
		case d < 0 || d > maxElements:
			return nil, fmt.Errorf("shape %v has an invalid dimension %d", spec, d)
		default:
			out[i] = int(d)
		}
		if out[i] != 0 && known > maxElements/out[i] {
			return nil, fmt.Errorf("shape %v is too large", spec)
		}
		known *= out[i]
	}
	total := product(in)
	if infer >= 0 {
		if known == 0 || total%known != 0 {
			return nil, fmt.Errorf("cannot reshape %v into %v", in, spec)
		}
		out[infer] = total / known
	}
	if product(out) != total {
		return nil, fmt.Errorf("cannot reshape %v into %v", in, spec)
	}
	return out, nil
}

func symString(vals []symVal) string {
	s := "["
	for i, v := range vals {
		if i > 0 {
			s += " "
		}
		if v.sym < 0 {
			s += "?"
		} else {
			s += fmt.Sprint(v.v)
		}
	}
	return s + "]"
}

func compileFlatten(n *nodeCtx) (kernel, error) {
	if err := n.arity(1, 1, 1, 1); err != nil {
		return nil, err
	}
	in := n.shape(0)
	axisAttr, err := n.attrInt("axis", 1)
	if err != nil {
		return nil, err
	}
	axis := int(axisAttr)
	if axis < 0 {
		axis += len(in)
	}
	if axis < 0 || axis > len(in) || (axisAttr < 0 && n.opset < 11) {
		return nil, fmt.Errorf("axis %d is out of range for shape %s", axisAttr, shapeString(in))
	}
	n.setOutTensor(0, n.dtype(0), []int{productOf(in[:axis]).dim(n), productOf(in[axis:]).dim(n)})
	n.setView(0)
	return &viewKernel{newShape: func(dst *[maxRank]int, in []*Tensor) ([]int, error) {
		s := in[0].Shape
		return append(dst[:0], product(s[:axis]), product(s[axis:])), nil
	}}, nil
}

// axesArg reads Squeeze's and Unsqueeze's axes: an attribute before opset 13, then an input.
// ok is false when they are given as an input computed at run time.
func axesArg(n *nodeCtx, input int) (axes []int64, given, ok bool, err error) {
	if n.opset < 13 {
		axes, given, err = n.attrInts("axes")
		return axes, given, true, err
	}
	if !n.has(input) {
		return nil, false, true, nil
	}
	if err := n.needTypes(input, Int64); err != nil {
		return nil, false, false, err
	}
	axes, ok = n.ints(input)
	return axes, true, ok, nil
}

// normAxes normalizes axes against a rank into dst (a fixed array at run time), refusing
// duplicates.
func normAxes(dst []int, axes []int64, rank int) ([]int, error) {
	if len(axes) > maxRank {
		return nil, fmt.Errorf("%d axes are too many", len(axes))
	}
	for _, a := range axes {
		ax, err := normAxis(a, rank)
		if err != nil {
			return nil, err
		}
		if slices.Contains(dst, ax) {
			return nil, fmt.Errorf("axis %d appears twice", a)
		}
		dst = append(dst, ax)
	}
	return dst, nil
}

func compileSqueeze(n *nodeCtx) (kernel, error) {
	if err := n.arity(1, 2, 1, 1); err != nil {
		return nil, err
	}
	in := n.shape(0)
	axes, given, known, err := axesArg(n, 1)
	if err != nil {
		return nil, err
	}
	var out []int
	switch {
	case !known:
		na := n.shape(1)
		if len(na) != 1 || na[0] < 0 || na[0] > len(in) {
			return nil, unsupported("axes of shape %s: the output's rank would be known only at run time", shapeString(na))
		}
		out = make([]int, len(in)-na[0])
		for i := range out {
			out[i] = n.sym()
		}
	case !given:
		for _, d := range in {
			if d < 0 {
				return nil, unsupported("Squeeze without axes of shape %s: which axes go depends on the run-time sizes", shapeString(in))
			}
			if d != 1 {
				out = append(out, d)
			}
		}
	default:
		ax, err := normAxes(nil, axes, len(in))
		if err != nil {
			return nil, err
		}
		for i, d := range in {
			if !slices.Contains(ax, i) {
				out = append(out, d)
			} else if d > 1 || d == 0 {
				return nil, fmt.Errorf("axis %d of shape %s is not 1", i, shapeString(in))
			}
		}
	}
	n.setOutTensor(0, n.dtype(0), out)
	if n.typ(0).kind != kindTensor {
		return nil, unsupported("Squeeze takes a tensor")
	}
	if vals, ok := n.symInts(0); ok {
		n.setSym(0, vals)
	}
	n.setView(0)
	static := slices.Clone(axes)
	return &viewKernel{newShape: func(dst *[maxRank]int, in []*Tensor) ([]int, error) {
		axes := static
		if len(in) > 1 && in[1] != nil {
			axes = data[int64](in[1])
		}
		s := in[0].Shape
		out := dst[:0]
		if !given {
			for _, d := range s {
				if d != 1 {
					out = append(out, d)
				}
			}
			return out, nil
		}
		var abuf [maxRank]int
		ax, err := normAxes(abuf[:0], axes, len(s))
		if err != nil {
			return nil, err
		}
		for i, d := range s {
			if !slices.Contains(ax, i) {
				out = append(out, d)
			} else if d != 1 {
				return nil, fmt.Errorf("axis %d of shape %v is not 1", i, s)
			}
		}
		return out, nil
	}}, nil
}

func compileUnsqueeze(n *nodeCtx) (kernel, error) {
	if err := n.arity(1, 2, 1, 1); err != nil {
		return nil, err
	}
	in := n.shape(0)
	axes, given, known, err := axesArg(n, 1)
	if err != nil {
		return nil, err
	}
	if !given {
		return nil, errors.New("Unsqueeze needs axes")
	}
	var out []int
	if !known {
		na := n.shape(1)
		if len(na) != 1 || na[0] < 0 {
			return nil, unsupported("axes of shape %s: the output's rank would be known only at run time", shapeString(na))
		}
		out = make([]int, len(in)+na[0])
		for i := range out {
			out[i] = n.sym()
		}
	} else {
		out, err = unsqueezeShape(in, axes)
		if err != nil {
			return nil, err
		}
	}
	if err := checkDims(concrete(out)); err != nil {
		return nil, err
	}
	n.setOutTensor(0, n.dtype(0), out)
	if n.typ(0).kind != kindTensor {
		return nil, unsupported("Unsqueeze takes a tensor")
	}
	if vals, ok := n.symInts(0); ok && len(in) == 0 {
		n.setSym(0, vals)
	}
	n.setView(0)
	static := slices.Clone(axes)
	return &viewKernel{newShape: func(dst *[maxRank]int, in []*Tensor) ([]int, error) {
		axes := static
		if len(in) > 1 && in[1] != nil {
			axes = data[int64](in[1])
		}
		s := in[0].Shape
		rank := len(s) + len(axes)
		if rank > maxRank {
			return nil, fmt.Errorf("rank %d is more than the %d supported", rank, maxRank)
		}
		var abuf [maxRank]int
		ax, err := normAxes(abuf[:0], axes, rank)
		if err != nil {
			return nil, err
		}
		out := dst[:rank]
		j := 0
		for i := range out {
			if slices.Contains(ax, i) {
				out[i] = 1
			} else {
				out[i] = s[j]
				j++
			}
		}
		return out, nil
	}}, nil
}

func unsqueezeShape(in []int, axes []int64) ([]int, error) {
	rank := len(in) + len(axes)
	if rank > maxRank {
		return nil, fmt.Errorf("rank %d is more than the %d supported", rank, maxRank)
	}
	ax, err := normAxes(nil, axes, rank)
	if err != nil {
		return nil, err
	}
	out := make([]int, rank)
	j := 0
	for i := range out {
		if slices.Contains(ax, i) {
			out[i] = 1
		} else {
			out[i] = in[j]
			j++
		}
	}
	return out, nil
}

// compileShape: a constant when the input's shape is known at load; otherwise computed at run
// time, with its symbols recorded so that shapes computed from it stay symbolic.
func compileShape(n *nodeCtx) (kernel, error) {
	if err := n.arity(1, 1, 1, 1); err != nil {
		return nil, err
	}
	in := n.shape(0)
	start, end := 0, len(in)
	if n.opset >= 15 {
		s, err := n.attrInt("start", 0)
		if err != nil {
			return nil, err
		}
		e, err := n.attrInt("end", int64(len(in)))
		if err != nil {
			return nil, err
		}
		start, end = clampAxis(s, len(in)), clampAxis(e, len(in))
		end = max(end, start)
	}
	dims := in[start:end]
	if static(dims) {
		t := &Tensor{DType: Int64, Shape: []int{len(dims)}, Int64: make([]int64, len(dims))}
		for i, d := range dims {
			t.Int64[i] = int64(d)
		}
		n.setConst(0, t)
		return nil, nil
	}
	n.setOutTensor(0, Int64, []int{len(dims)})
	vals := make([]symVal, len(dims))
	for i, d := range dims {
		if d < 0 {
			vals[i].sym = d
		} else {
			vals[i].v = int64(d)
		}
	}
	n.setSym(0, vals)
	return kernelFunc(func(x *exec, in, out []*Tensor) error {
		s := in[0].Shape
		lo, hi := min(start, len(s)), min(end, len(s))
		if err := out[0].reset(Int64, hi-lo); err != nil {
			return err
		}
		for i, d := range s[lo:hi] {
			out[0].Int64[i] = int64(d)
		}
		return nil
	}), nil
}

// clampAxis is Shape's treatment of start and end: negative counts from the end, then both are
// clamped to [0, rank].
func clampAxis(a int64, rank int) int {
	if a < 0 {
		a += int64(rank)
	}
	return int(min(max(a, 0), int64(rank)))
}

func compileSize(n *nodeCtx) (kernel, error) {
	if err := n.arity(1, 1, 1, 1); err != nil {
		return nil, err
	}
	if in := n.shape(0); static(in) {
		n.setConst(0, &Tensor{DType: Int64, Shape: []int{}, Int64: []int64{int64(product(in))}})
		return nil, nil
	}
	n.setOutTensor(0, Int64, []int{})
	return kernelFunc(func(x *exec, in, out []*Tensor) error {
		if err := out[0].reset(Int64); err != nil {
			return err
		}
		out[0].Int64[0] = int64(in[0].Len())
		return nil
	}), nil
}

// clampIndex clamps a Slice bound, as ONNX does: negative counts from the end, then the
// result is clamped to [0, dim] (to [-1, dim-1] for negative steps).
func clampIndex(v int64, dim int, negStep bool) int {
	if v < 0 {
		v += int64(dim)
	}
	lo, hi := int64(0), int64(dim)
	if negStep {
		lo, hi = -1, int64(dim)-1
	}
	return int(min(max(v, lo), hi))
}

// sliceLen is the number of elements from start to end by step.
func sliceLen(start, end, step int) int {
	if step > 0 {
		return max(0, (end-start+step-1)/step)
	}
	return max(0, (start-end-step-1)/(-step))
}
