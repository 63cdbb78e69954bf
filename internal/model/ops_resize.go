package model

// Resize and Upsample. Every mode is separable: each resized axis maps its output positions to
// taps (input index, weight) once, and the data passes through one axis at a time, in float64.
// The coordinate transforms follow ONNX's definition, including its use of scale·input (not
// the rounded output size) as the output width when scales are given.

import (
	"fmt"
	"math"
)

func init() {
	register(
		opImpl{domain: domainONNX, name: "Resize", minOpset: 10, maxOpset: maxOpsetONNX, compile: compileResize},
		opImpl{domain: domainONNX, name: "Upsample", minOpset: 7, maxOpset: 9, compile: compileUpsample},
	)
}

type resizeMode uint8

const (
	resizeNearest resizeMode = iota
	resizeLinear
	resizeCubic
)

type resizeKernel struct {
	mode        resizeMode
	coord       string // coordinate_transformation_mode
	nearest     string // nearest_mode; "simple" is opset 10's and Upsample's floor (ceil downsampling)
	cubicA      float64
	exclude     bool
	extrapolate float64
	// the inputs' positions: -1 when the form has no such input
	roiIn, scalesIn, sizesIn int
	scalesAttr               []float32 // Upsample-7's scales attribute
}

func readResizeMode(n *nodeCtx, k *resizeKernel) error {
	mode, err := n.attrString("mode", "nearest")
	if err != nil {
		return err
	}
	switch mode {
	case "nearest":
		k.mode = resizeNearest
	case "linear", "bilinear":
		k.mode = resizeLinear
	case "cubic":
		k.mode = resizeCubic
	default:
		return fmt.Errorf("mode %q is not nearest, linear or cubic", mode)
	}
	return nil
}

func compileResize(n *nodeCtx) (kernel, error) {
	minIn := 2 // opset 10: X, scales; 11–12: X, roi, scales (sizes optional)
	if n.opset >= 11 {
		minIn = 3
	}
	if n.opset >= 13 {
		minIn = 1 // roi, scales and sizes all optional
	}
	if err := n.arity(minIn, 4, 1, 1); err != nil {
		return nil, err
	}
	k := &resizeKernel{roiIn: 1, scalesIn: 2, sizesIn: 3, nearest: "round_prefer_floor", coord: "half_pixel"}
	if n.opset < 11 {
		k.roiIn, k.scalesIn, k.sizesIn, k.nearest, k.coord = -1, 1, -1, "simple", "asymmetric"
	}
	if err := readResizeMode(n, k); err != nil {
		return nil, err
	}
	var err error
	if n.opset >= 11 {
		if k.coord, err = n.attrString("coordinate_transformation_mode", "half_pixel"); err != nil {
			return nil, err
		}
		switch k.coord {
		case "half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric", "tf_half_pixel_for_nn", "tf_crop_and_resize", "half_pixel_symmetric":
		default:
			return nil, unsupported("coordinate_transformation_mode %q", k.coord)
		}
		if k.nearest, err = n.attrString("nearest_mode", "round_prefer_floor"); err != nil {
			return nil, err
		}
		switch k.nearest {
		case "round_prefer_floor", "round_prefer_ceil", "floor", "ceil":
		default:
			return nil, unsupported("nearest_mode %q", k.nearest)
		}
		a, err := n.attrFiniteFloat("cubic_coeff_a", -0.75)
		if err != nil {
			return nil, err
		}
		k.cubicA = float64(a)
		ex, err := n.attrInt("exclude_outside", 0)
		if err != nil {
			return nil, err
		}
		k.exclude = ex != 0
		e, err := n.attrFloat("extrapolation_value", 0)
		if err != nil {
			return nil, err
		}
		k.extrapolate = float64(e)
	}
	if aa, err := n.attrInt("antialias", 0); err != nil || aa != 0 {
		return nil, unsupported("Resize with antialias")
	}
	if n.hasAttr("axes") {
		return nil, unsupported("Resize with axes")
	}
	if p, err := n.attrString("keep_aspect_ratio_policy", "stretch"); err != nil || p != "stretch" {
		return nil, unsupported("Resize with keep_aspect_ratio_policy %q", p)
	}
	return k.compile(n)
}

func compileUpsample(n *nodeCtx) (kernel, error) {
	k := &resizeKernel{roiIn: -1, scalesIn: 1, sizesIn: -1, nearest: "simple", coord: "asymmetric"}
	if n.opset < 9 {
		if err := n.arity(1, 1, 1, 1); err != nil {
			return nil, err
		}
		s, ok, err := n.attrFloats("scales")
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, fmt.Errorf("attribute scales is required")
		}
		k.scalesIn, k.scalesAttr = -1, s
	} else if err := n.arity(2, 2, 1, 1); err != nil {
		return nil, err
	}
	if err := readResizeMode(n, k); err != nil {
		return nil, err
	}
	if k.mode == resizeCubic {
		return nil, fmt.Errorf("Upsample has no cubic mode")
	}
	return k.compile(n)
}

func (k *resizeKernel) compile(n *nodeCtx) (kernel, error) {
	types := []DType{Float32, Float64}
	if k.mode == resizeNearest {
		types = append(types, Int8, Uint8, Int32)
	}
	if err := n.needTypes(0, types...); err != nil {
		return nil, err
	}
	for _, i := range []int{k.roiIn, k.scalesIn} {
		if i >= 0 && n.has(i) {
			if err := n.needTypes(i, Float32, Float64); err != nil {
				return nil, err
			}
		}
	}
	if k.sizesIn >= 0 && n.has(k.sizesIn) {
		if err := n.needTypes(k.sizesIn, Int64); err != nil {
			return nil, err
		}
	}
	in := n.shape(0)
	out := make([]int, len(in))
	for d := range out {
		out[d] = n.sym()
	}
	if static(in) && k.constArgs(n) {
		var p resizePlan
		if err := k.plan(&p, in, n.konst(k.roiIn), n.konst(k.scalesIn), n.konst(k.sizesIn)); err != nil {
			return nil, err
		}
		copy(out, p.out[:len(in)])
	}
	n.setOutTensor(0, n.dtype(0), out)
	return k, nil
}

// constArgs tells whether the scales and sizes the node gives are known at load.
func (k *resizeKernel) constArgs(n *nodeCtx) bool {
	for _, i := range []int{k.scalesIn, k.sizesIn} {
		if i >= 0 && n.has(i) && n.konst(i) == nil {
			return false
		}
	}
	return true
}

// resizePlan is one run's output size and scale per axis.
type resizePlan struct {
	out   [maxRank]int
	scale [maxRank]float64
	roi   [2 * maxRank]float64
}

// plan computes the output sizes and scales from sizes (when given and not empty) or scales.
func (k *resizeKernel) plan(p *resizePlan, in []int, roi, scales, sizes *Tensor) error {
	rank := len(in)
	if rank == 0 {
		return fmt.Errorf("a scalar cannot be resized")
	}
	for d := range rank {
		p.roi[d], p.roi[rank+d] = 0, 1
	}
	if k.coord == "tf_crop_and_resize" {
		if roi == nil || roi.Len() != 2*rank {
			return fmt.Errorf("tf_crop_and_resize needs a roi of %d values", 2*rank)
		}
		for i, v := range floatValues(roi) {
			p.roi[i] = v
		}
	}
	switch {
	case sizes != nil && sizes.Len() > 0:
		if scales != nil && scales.Len() > 0 {
			return fmt.Errorf("scales and sizes are both given")
		}
		if sizes.Len() != rank {
			return fmt.Errorf("sizes has %d values for rank %d", sizes.Len(), rank)
		}
		for d, s := range sizes.Int64[:rank] {
			if s < 0 || s > maxElements {
				return fmt.Errorf("sizes %v", sizes.Int64)
			}
			p.out[d] = int(s)
			p.scale[d] = 1
			if in[d] > 0 {
				p.scale[d] = float64(s) / float64(in[d])
			}
		}
	case scales != nil && scales.Len() > 0 || k.scalesAttr != nil:
		var vals []float64
		if k.scalesAttr != nil {
			for _, v := range k.scalesAttr {
				vals = append(vals, float64(v))
			}
		} else {
			vals = floatValues(scales)
		}
		if len(vals) != rank {
			return fmt.Errorf("scales has %d values for rank %d", len(vals), rank)
		}
		for d, s := range vals {
			size := s * float64(in[d])
			if !(s > 0) || math.IsInf(s, 0) || size > maxElements {
				return fmt.Errorf("scale %v on axis %d", s, d)
			}
			p.out[d] = int(size)
			p.scale[d] = s
		}
	default:
		return fmt.Errorf("neither scales nor sizes is given")
	}
	return nil
}

// floatValues reads a float32 or float64 tensor as float64s.
func floatValues(t *Tensor) []float64 {
	if t.DType == Float64 {
		return t.Float64[:t.Len()]
	}
	v := make([]float64, t.Len())
	for i, f := range t.Float32[:t.Len()] {
		v[i] = float64(f)
	}
	return v
}

func (k *resizeKernel) run(x *exec, in, out []*Tensor) error {
	t := in[0]
	arg := func(i int) *Tensor {
		if i < 0 || i >= len(in) {
			return nil
		}
		return in[i]
	}
	var p resizePlan
	if err := k.plan(&p, t.Shape, arg(k.roiIn), arg(k.scalesIn), arg(k.sizesIn)); err != nil {
		return err
	}
	rank := len(t.Shape)
	o := out[0]
	if err := o.reset(t.DType, p.out[:rank]...); err != nil {
		return err
	}
	if o.Len() == 0 {
		return nil
	}
	if t.Len() == 0 {
		return fmt.Errorf("input of shape %v has nothing to resize into %v", t.Shape, o.Shape)
	}
	// cur holds the data, resized along the axes done so far.
	cur, next := x.scratch(0), x.scratch(1)
	if err := castInto(cur, t, Float64); err != nil {
		return err
	}
	taps, tapIdx := x.scratch(2), x.scratch(3)
	var shape [maxRank]int
	copy(shape[:], t.Shape)
	for d := range rank {
		if p.out[d] == shape[d] && p.scale[d] == 1 && k.coord != "tf_crop_and_resize" {
			continue // the identity, in every mode and transform but cropping
		}
		n := k.taps()
		if err := taps.reset(Float64, p.out[d]*n); err != nil {
			return err
		}
		if err := tapIdx.reset(Int64, p.out[d]*n); err != nil {
			return err
		}
		k.axisTaps(taps.Float64, tapIdx.Int64, shape[d], p.out[d], p.scale[d], p.roi[d], p.roi[rank+d])
		outer, inner := product(shape[:d]), product(shape[d+1:rank])
		shape[d] = p.out[d]
		if err := next.reset(Float64, shape[:rank]...); err != nil {
			return err
		}
		resampleAxis(next.Float64, cur.Float64, taps.Float64, tapIdx.Int64, n, outer, inner, p.out[d], cur.Len()/max(outer*inner, 1), k.extrapolate)
		cur, next = next, cur
	}
	return castInto(o, cur, t.DType)
}

// taps is the number of input positions each output position reads.
func (k *resizeKernel) taps() int {
	switch k.mode {
	case resizeLinear:
		return 2
	case resizeCubic:
		return 4
	}
	return 1
}

// axisTaps fills, for each of out positions, its taps: input indices and weights. An index of
// -1 stands for the extrapolation value (tf_crop_and_resize outside the input).
func (k *resizeKernel) axisTaps(w []float64, idx []int64, in, out int, scale, roiStart, roiEnd float64) {
	n := k.taps()
	width := scale * float64(in) // ONNX's output width: scale·input, not the rounded size
	clampIdx := func(i int) int64 { return int64(min(max(i, 0), in-1)) }
	for o := range out {
		xo := float64(o)
		var xi float64
		switch k.coord {
		case "align_corners":
			if width != 1 {
				xi = xo * float64(in-1) / (width - 1)
			}
		case "asymmetric":
			xi = xo / scale
		case "tf_half_pixel_for_nn":
			xi = (xo + 0.5) / scale
		case "pytorch_half_pixel":
			xi = -0.5
			if width != 1 {
				xi = (xo+0.5)/scale - 0.5
			}
		case "half_pixel_symmetric":
			adjust := float64(out) / width
			xi = float64(in)/2*(1-adjust) + (xo+0.5)/scale - 0.5
		case "tf_crop_and_resize":
			if width == 1 {
				xi = (roiEnd - roiStart) * float64(in-1) / 2
			} else {
				xi = xo * (roiEnd - roiStart) * float64(in-1) / (width - 1)
			}
			xi += roiStart * float64(in-1)
		default: // half_pixel
			xi = (xo+0.5)/scale - 0.5
		}
		ws, is := w[o*n:(o+1)*n], idx[o*n:(o+1)*n]
		if k.coord == "tf_crop_and_resize" && (xi < 0 || xi > float64(in-1) || math.IsNaN(xi)) {
			for j := range n {
				ws[j], is[j] = 0, -1
			}
			ws[0] = 1
			continue
		}
		x0 := math.Floor(xi)
		t := xi - x0
		base := int(x0)
		switch k.mode {
		case resizeNearest:
			at := base
			if t != 0 {
				switch k.nearest {
				case "round_prefer_floor":
					if t > 0.5 {
						at++
					}
				case "round_prefer_ceil":
					if t >= 0.5 {
						at++
					}
				case "ceil":
					at++
				case "simple":
					if scale < 1 {
						at++
					}
				}
			}
			ws[0], is[0] = 1, clampIdx(at)
		case resizeLinear:
			ws[0], ws[1] = 1-t, t
			is[0], is[1] = clampIdx(base), clampIdx(base+1)
		case resizeCubic:
			a := k.cubicA
			ws[0] = ((a*(t+1)-5*a)*(t+1)+8*a)*(t+1) - 4*a
			ws[1] = ((a+2)*t-(a+3))*t*t + 1
			ws[2] = ((a+2)*(1-t)-(a+3))*(1-t)*(1-t) + 1
			ws[3] = ((a*(2-t)-5*a)*(2-t)+8*a)*(2-t) - 4*a
			var sum float64
			for j := range 4 {
				at := base - 1 + j
				if k.exclude && (at < 0 || at >= in) {
					ws[j] = 0
				}
				sum += ws[j]
				is[j] = clampIdx(at)
			}
			if k.exclude && sum != 0 {
				for j := range ws {
					ws[j] /= sum
				}
			}
		}
	}
}

// resampleAxis resizes src [outer, in, inner] along its middle axis into dst [outer, out, inner].
// An output position whose first tap index is -1 gets the extrapolation value.
func resampleAxis(dst, src, w []float64, idx []int64, n, outer, inner, out, in int, extrapolate float64) {
	for b := range outer {
		s := src[b*in*inner : (b+1)*in*inner]
		for o := range out {
			row := dst[(b*out+o)*inner : (b*out+o+1)*inner]
			ws, is := w[o*n:(o+1)*n], idx[o*n:(o+1)*n]
			if is[0] < 0 {
				for i := range row {
					row[i] = extrapolate
				}
				continue
			}
			clear(row)
			for j, wt := range ws {
				if wt == 0 {
					continue
				}
				line := s[int(is[j])*inner : (int(is[j])+1)*inner]
				for i, v := range line {
					row[i] += wt * v
				}
			}
		}
	}
}
