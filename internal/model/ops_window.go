package model

// The sliding window that Conv, ConvTranspose and the pooling operators share: kernel_shape,
// strides, dilations, pads and auto_pad, read once at load, and the output geometry they give
// an input's spatial shape, resolved on every run (the spatial sizes may be symbolic at load).

import (
	"fmt"
	"slices"
)

// maxWindowAttr bounds every kernel size, stride, dilation and pad: far beyond any real model,
// and small enough that no sum or product of a few of them overflows.
const maxWindowAttr = 1 << 24

// window is a node's window attributes over its spatial axes.
type window struct {
	rank      int   // spatial axes
	kernel    []int // nil when the kernel comes from the weights (Conv)
	strides   []int
	dilations []int
	pads      []int // begins, then ends
	autoPad   string
	ceil      bool
}

// readWindow reads the window attributes for rank spatial axes. kernel_shape is required when
// needKernel is set (the pools); Conv takes its kernel from the weights' shape.
func readWindow(n *nodeCtx, rank int, needKernel bool) (*window, error) {
	w := &window{rank: rank}
	ints := func(name string, def, lo int, count int) ([]int, error) {
		v, ok, err := n.attrInts(name)
		if err != nil {
			return nil, err
		}
		out := make([]int, count)
		if !ok {
			for i := range out {
				out[i] = def
			}
			return out, nil
		}
		if len(v) != count {
			return nil, fmt.Errorf("attribute %s has %d values, want %d for %d spatial axes", name, len(v), count, rank)
		}
		for i, x := range v {
			if x < int64(lo) || x > maxWindowAttr {
				return nil, fmt.Errorf("attribute %s has value %d, want %d to %d", name, x, lo, maxWindowAttr)
			}
			out[i] = int(x)
		}
		return out, nil
	}
	var err error
	if _, ok, _ := n.attrInts("kernel_shape"); ok || needKernel {
		if !ok {
			return nil, fmt.Errorf("attribute kernel_shape is required")
		}
		if w.kernel, err = ints("kernel_shape", 1, 1, rank); err != nil {
			return nil, err
		}
	}
	if w.strides, err = ints("strides", 1, 1, rank); err != nil {
		return nil, err
	}
	if w.dilations, err = ints("dilations", 1, 1, rank); err != nil {
		return nil, err
	}
	if w.pads, err = ints("pads", 0, 0, 2*rank); err != nil {
		return nil, err
	}
	if w.autoPad, err = n.attrString("auto_pad", "NOTSET"); err != nil {
		return nil, err
	}
	switch w.autoPad {
	case "NOTSET":
	case "VALID", "SAME_UPPER", "SAME_LOWER":
		if n.hasAttr("pads") && slices.ContainsFunc(w.pads, func(p int) bool { return p != 0 }) {
			return nil, fmt.Errorf("auto_pad %s and explicit pads are exclusive", w.autoPad)
		}
	default:
		return nil, fmt.Errorf("auto_pad %q is not NOTSET, SAME_UPPER, SAME_LOWER or VALID", w.autoPad)
	}
	ceil, err := n.attrInt("ceil_mode", 0)
	if err != nil {
		return nil, err
	}
	w.ceil = ceil != 0
	if w.ceil && w.autoPad != "NOTSET" {
		return nil, unsupported("ceil_mode with auto_pad %s", w.autoPad)
	}
	return w, nil
}

// geometry is a window resolved against one input: per spatial axis the input size, kernel
// size, output size and the padding before the first element.
type geometry struct {
	in, kernel, out, padBegin, padEnd [maxRank]int
}

// resolve computes the output geometry for the input's spatial sizes and a kernel (w.kernel
// when nil).
func (w *window) resolve(g *geometry, in, kernel []int) error {
	if kernel == nil {
		kernel = w.kernel
	}
	for d := range w.rank {
		size, k, s := in[d], kernel[d], w.strides[d]
		if k < 1 || k > maxWindowAttr {
			return fmt.Errorf("kernel size %d on spatial axis %d", k, d)
		}
		span := w.dilations[d]*(k-1) + 1
		pb, pe := w.pads[d], w.pads[w.rank+d]
		var out int
		switch w.autoPad {
		case "VALID":
			pb, pe = 0, 0
			fallthrough
		case "NOTSET":
			padded := size + pb + pe
			if padded < span {
				return fmt.Errorf("spatial axis %d: the window (%d) is larger than the padded input (%d)", d, span, padded)
			}
			out = (padded-span)/s + 1
			if w.ceil && (padded-span)%s != 0 {
				out++
				// The last window must start inside the input or its begin padding.
				if (out-1)*s >= size+pb {
					out--
				}
			}
		default: // SAME_UPPER, SAME_LOWER: the output covers the input at the stride
			out = (size + s - 1) / s
			total := max(0, (out-1)*s+span-size)
			pb = total / 2
			if w.autoPad == "SAME_LOWER" {
				pb = total - total/2
			}
			pe = total - pb
		}
		g.in[d], g.kernel[d], g.out[d], g.padBegin[d], g.padEnd[d] = size, k, out, pb, pe
	}
	return nil
}

// outShape is the output shape at load: [N, channels, spatial...], each spatial size computed
// where the input's and the kernel's are known, a fresh symbol where not.
func (w *window) outShape(n *nodeCtx, in []int, channels int, kernel []int) ([]int, error) {
	out := make([]int, 2+w.rank)
	out[0], out[1] = in[0], channels
	if kernel == nil {
		kernel = w.kernel
	}
	if static(in[2:]) && static(kernel) {
		var g geometry
		if err := w.resolve(&g, in[2:], kernel); err != nil {
			return nil, err
		}
		copy(out[2:], g.out[:w.rank])
		return out, nil
	}
	for d := range w.rank {
		out[2+d] = n.sym()
	}
	return out, nil
}

// spatialInput checks that input 0 is [N, C, spatial...] with at least one spatial axis.
func spatialInput(n *nodeCtx) ([]int, error) {
	in := n.shape(0)
	if len(in) < 3 {
		return nil, fmt.Errorf("input of shape %s has no spatial axis (want [N, C, D1, ...])", shapeString(in))
	}
	return in, nil
}
