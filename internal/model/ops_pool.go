package model

// Pooling: MaxPool (with its indices), AveragePool, LpPool, their Global forms, and MaxUnpool.
// A window's loops run over the kernel positions that fall inside the input only, so a huge
// kernel_shape over a small input costs the input's size, not the kernel's.

import (
	"fmt"
	"math"
)

type poolKind uint8

const (
	poolMax poolKind = iota
	poolAvg
	poolLp
)

func init() {
	for name, kind := range map[string]poolKind{"MaxPool": poolMax, "AveragePool": poolAvg, "LpPool": poolLp} {
		register(opImpl{domain: domainONNX, name: name, minOpset: 1, maxOpset: maxOpsetONNX,
			compile: func(n *nodeCtx) (kernel, error) { return compilePool(n, kind, false) }})
		register(opImpl{domain: domainONNX, name: "Global" + name, minOpset: 1, maxOpset: maxOpsetONNX,
			compile: func(n *nodeCtx) (kernel, error) { return compilePool(n, kind, true) }})
	}
	register(opImpl{domain: domainONNX, name: "MaxUnpool", minOpset: 9, maxOpset: maxOpsetONNX, compile: compileMaxUnpool})
}

func compilePool(n *nodeCtx, kind poolKind, global bool) (kernel, error) {
	maxOut := 1
	if kind == poolMax && !global {
		maxOut = 2
	}
	if err := n.arity(1, 1, 1, maxOut); err != nil {
		return nil, err
	}
	types := []DType{Float32, Float64}
	if kind == poolMax {
		types = append(types, Int8, Uint8)
	}
	if err := n.needTypes(0, types...); err != nil {
		return nil, err
	}
	in, err := spatialInput(n)
	if err != nil {
		return nil, err
	}
	rank := len(in) - 2
	k := &poolKernel{kind: kind, p: 2}
	if global {
		k.win = &window{rank: rank, strides: ones(rank), dilations: ones(rank), pads: make([]int, 2*rank), autoPad: "NOTSET"}
	} else if k.win, err = readWindow(n, rank, true); err != nil {
		return nil, err
	}
	if kind == poolAvg {
		inc, err := n.attrInt("count_include_pad", 0)
		if err != nil {
			return nil, err
		}
		k.countPad = inc != 0
	}
	if kind == poolLp {
		p, err := n.attrInt("p", 2)
		if err != nil {
			return nil, err
		}
		if p < 1 || p > 64 {
			return nil, unsupported("LpPool with p=%d", p)
		}
		k.p = int(p)
	}
	if kind == poolMax {
		order, err := n.attrInt("storage_order", 0)
		if err != nil {
			return nil, err
		}
		if order != 0 && order != 1 {
			return nil, fmt.Errorf("storage_order %d is not 0 or 1", order)
		}
		k.colMajor = order == 1
	}
	var out []int
	if global {
		out = append([]int{in[0], in[1]}, ones(rank)...)
	} else if out, err = k.win.outShape(n, in, in[1], nil); err != nil {
		return nil, err
	}
	k.global = global
	n.setOutTensor(0, n.dtype(0), out)
	n.setOutTensor(1, Int64, out)
	k.indices = n.numOut() > 1 && n.node.Outputs[1] != ""
	return k, nil
}

func ones(n int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = 1
	}
	return s
}

type poolKernel struct {
	kind     poolKind
	win      *window
	global   bool
	countPad bool
	p        int
	colMajor bool
	indices  bool
}

func (k *poolKernel) run(x *exec, in, out []*Tensor) error {
	t := in[0]
	rank := k.win.rank
	if len(t.Shape) != 2+rank {
		return fmt.Errorf("input of shape %v, want rank %d", t.Shape, 2+rank)
	}
	var g geometry
	kernel := k.win.kernel
	if k.global {
		kernel = t.Shape[2:]
		if product(kernel) == 0 {
			return fmt.Errorf("input of shape %v has an empty spatial axis", t.Shape)
		}
	}
	if err := k.win.resolve(&g, t.Shape[2:], kernel); err != nil {
		return err
	}
	for i := range min(len(out), 2) {
		dt := t.DType
		if i == 1 {
			dt = Int64
		}
		if err := resetOutput(x, out[i], dt, t.Shape[0], t.Shape[1], rank, &g); err != nil {
			return err
		}
	}
	var idx []int64
	if k.indices && len(out) > 1 {
		idx = out[1].Int64
	}
	w := poolWalk{k: k, g: &g, rank: rank}
	switch t.DType {
	case Float32:
		poolT(&w, data[float32](t), data[float32](out[0]), idx)
	case Float64:
		poolT(&w, data[float64](t), data[float64](out[0]), idx)
	case Int8:
		poolT(&w, data[int8](t), data[int8](out[0]), idx)
	case Uint8:
		poolT(&w, data[uint8](t), data[uint8](out[0]), idx)
	}
	return nil
}

// poolWalk is one run's pooling geometry.
type poolWalk struct {
	k    *poolKernel
	g    *geometry
	rank int
}

// poolT pools every plane (image × channel) of x into o, and the flat input index of each
// maximum into idx when it is not nil.
func poolT[T number](w *poolWalk, x, o []T, idx []int64) {
	g, rank, k := w.g, w.rank, w.k
	inVol, outVol := product(g.in[:rank]), product(g.out[:rank])
	if outVol == 0 {
		return
	}
	planes := len(o) / outVol
	var colStride [maxRank]int // an input position's offset in column-major order
	s := 1
	for d := range rank {
		colStride[d] = s
		s *= g.in[d]
	}
	var lo, hi, base, kidx, at [maxRank]int
	for pl := range planes {
		img := x[pl*inVol : (pl+1)*inVol]
		for pos := range outVol {
			// The kernel positions inside the input, and the count the average divides by.
			rem, count, empty := pos, 1, false
			for d := rank - 1; d >= 0; d-- {
				od := rem % g.out[d]
				rem /= g.out[d]
				start, dil, kd := od*k.win.strides[d]-g.padBegin[d], k.win.dilations[d], g.kernel[d]
				base[d] = start
				lo[d] = 0
				if start < 0 {
					lo[d] = (-start + dil - 1) / dil
				}
				hi[d] = min(kd, (g.in[d]-start+dil-1)/dil)
				if lo[d] >= hi[d] {
					empty = true
				}
				if k.countPad {
					// Positions inside the input or its explicit padding count.
					cl, ch := 0, kd
					if start < -g.padBegin[d] {
						cl = (-g.padBegin[d] - start + dil - 1) / dil
					}
					ch = min(kd, (g.in[d]+g.padEnd[d]-start+dil-1)/dil)
					count *= max(0, ch-cl)
				} else {
					count *= max(0, hi[d]-lo[d])
				}
			}
			out := pl*outVol + pos
			if empty {
				// A window wholly in the padding: nothing to pool.
				o[out] = 0
				if idx != nil {
					idx[out] = -1
				}
				continue
			}
			copy(kidx[:rank], lo[:rank])
			var best T
			bestAt, first := 0, true
			var sum float64
			for {
				off, coff := 0, 0
				for d := range rank {
					at[d] = base[d] + kidx[d]*k.win.dilations[d]
					off = off*g.in[d] + at[d]
					coff += at[d] * colStride[d]
				}
				v := img[off]
				switch k.kind {
				case poolMax:
					if first || v > best {
						best, bestAt, first = v, off, false
						if k.colMajor {
							bestAt = coff
						}
					}
				case poolAvg:
					sum += float64(v)
				default:
					sum += math.Pow(math.Abs(float64(v)), float64(k.p))
				}
				d := rank - 1
				for ; d >= 0; d-- {
					kidx[d]++
					if kidx[d] < hi[d] {
						break
					}
					kidx[d] = lo[d]
				}
				if d < 0 {
					break
				}
			}
			switch k.kind {
			case poolMax:
				o[out] = best
				if idx != nil {
					idx[out] = int64(pl*inVol + bestAt)
				}
			case poolAvg:
				o[out] = T(sum / float64(count))
			default:
				o[out] = T(math.Pow(sum, 1/float64(k.p)))
			}
		}
	}
}

func compileMaxUnpool(n *nodeCtx) (kernel, error) {
	if err := n.arity(2, 3, 1, 1); err != nil {
		return nil, err
	}
	if err := n.needTypes(0, Float32, Float64); err != nil {
		return nil, err
	}
	if err := n.needTypes(1, Int64); err != nil {
		return nil, err
	}
	in, err := spatialInput(n)
	if err != nil {
		return nil, err
	}
	rank := len(in) - 2
	win, err := readWindow(n, rank, true)
	if err != nil {
		return nil, err
	}
	if win.autoPad != "NOTSET" {
		return nil, unsupported("MaxUnpool with auto_pad %s", win.autoPad)
	}
	out := make([]int, len(in))
	copy(out, in[:2])
	if n.has(2) {
		if s, ok := n.ints(2); ok && len(s) == len(in) {
			for d, v := range s {
				out[d] = int(v)
				if v < 0 || v > maxElements {
					return nil, fmt.Errorf("output_shape %v", s)
				}
			}
		} else {
			for d := range out {
				out[d] = n.sym()
			}
		}
	} else {
		for d := range rank {
			if in[2+d] < 0 {
				out[2+d] = n.sym()
			} else {
				out[2+d] = (in[2+d]-1)*win.strides[d] + win.kernel[d] - win.pads[d] - win.pads[rank+d]
			}
		}
	}
	n.setOutTensor(0, n.dtype(0), out)
	return &maxUnpoolKernel{win: win}, nil
}

type maxUnpoolKernel struct{ win *window }

func (k *maxUnpoolKernel) run(x *exec, in, out []*Tensor) error {
	t, idx := in[0], in[1]
	rank := k.win.rank
	if len(t.Shape) != 2+rank || len(idx.Shape) != len(t.Shape) || idx.Len() != t.Len() {
		return fmt.Errorf("input %v and indices %v must have the same shape of rank %d", t.Shape, idx.Shape, 2+rank)
	}
	// Without output_shape the output is (in−1)·stride + kernel − pads per axis. With it, the
	// indices address that shape directly: they are MaxPool's, into its input, whose size
	// output_shape restores (onnxruntime and PyTorch; ONNX 1.12's reference instead placed
	// the inferred output at the start of a larger one, see backendExpectedFailures).
	shape := append(x.shapeBuf()[:0], t.Shape[:2]...)
	if len(in) > 2 && in[2] != nil {
		s, err := runShapeArg(x.shapeBuf(), in[2])
		if err != nil {
			return err
		}
		if len(s) != len(t.Shape) || s[0] != t.Shape[0] || s[1] != t.Shape[1] {
			return fmt.Errorf("output_shape %v for input %v", s, t.Shape)
		}
		shape = s
	} else {
		for d := range rank {
			size := (t.Shape[2+d]-1)*k.win.strides[d] + k.win.kernel[d] - k.win.pads[d] - k.win.pads[rank+d]
			if size < 0 {
				return fmt.Errorf("input %v unpools to a negative size on spatial axis %d", t.Shape, d)
			}
			shape = append(shape, size)
		}
	}
	o := out[0]
	if err := o.reset(t.DType, shape...); err != nil {
		return err
	}
	switch t.DType {
	case Float32:
		return unpoolT(data[float32](t), idx.Int64[:t.Len()], data[float32](o))
	case Float64:
		return unpoolT(data[float64](t), idx.Int64[:t.Len()], data[float64](o))
	}
	return nil
}

// unpoolT scatters x into a zeroed o at the flat indices.
func unpoolT[T float32 | float64](x []T, idx []int64, o []T) error {
	clear(o)
	for i, at := range idx {
		if at < 0 || at >= int64(len(o)) {
			return fmt.Errorf("index %d is out of range for an output of %d elements", at, len(o))
		}
		o[at] = x[i]
	}
	return nil
}
