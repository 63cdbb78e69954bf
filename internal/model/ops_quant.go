package model

// The quantization operators: QuantizeLinear, DequantizeLinear, DynamicQuantizeLinear, and the
// integer products MatMulInteger, QLinearMatMul, ConvInteger and QLinearConv. Integer products
// accumulate exactly (int64 for matrices; float64, exact below 2⁵³, through Conv's kernel for
// convolutions); requantization rounds half to even and saturates, as ONNX's reference does.

import (
	"fmt"
	"math"
)

func init() {
	register(
		opImpl{domain: domainONNX, name: "QuantizeLinear", minOpset: 10, maxOpset: maxOpsetONNX, compile: compileQuantize},
		opImpl{domain: domainONNX, name: "DequantizeLinear", minOpset: 10, maxOpset: maxOpsetONNX, compile: compileDequantize},
		opImpl{domain: domainONNX, name: "DynamicQuantizeLinear", minOpset: 11, maxOpset: maxOpsetONNX, compile: compileDynamicQuantize},
		opImpl{domain: domainONNX, name: "MatMulInteger", minOpset: 10, maxOpset: maxOpsetONNX, compile: compileMatMulInteger},
		opImpl{domain: domainONNX, name: "QLinearMatMul", minOpset: 10, maxOpset: maxOpsetONNX, compile: compileQLinearMatMul},
		opImpl{domain: domainONNX, name: "ConvInteger", minOpset: 10, maxOpset: maxOpsetONNX, compile: compileConvInteger},
		opImpl{domain: domainONNX, name: "QLinearConv", minOpset: 10, maxOpset: maxOpsetONNX, compile: compileQLinearConv},
	)
}

// quantRange is the range of an 8-bit quantized type.
func quantRange(dt DType) (lo, hi float64) {
	if dt == Int8 {
		return -128, 127
	}
	return 0, 255
}

// saturate rounds half to even and clamps into [lo, hi]. QuantizeLinear rounds x/scale before
// adding the zero point, the requantizing products after (as ONNX's reference does both): an
// integer zero point changes which way a tie rounds.
func saturate(v, lo, hi float64) float64 {
	return math.Min(math.Max(math.RoundToEven(v), lo), hi)
}

// refuseBlocked refuses the opset 21 attributes of blocked quantization and other output types.
func refuseBlocked(n *nodeCtx) error {
	if b, err := n.attrInt("block_size", 0); err != nil || b != 0 {
		return unsupported("%s with block_size", n.opType())
	}
	if d, err := n.attrInt("output_dtype", 0); err != nil || (d != 0 && d != int64(Uint8) && d != int64(Int8)) {
		return unsupported("%s with output_dtype %d", n.opType(), d)
	}
	return nil
}

// perAxis reads QuantizeLinear's and DequantizeLinear's axis for a scale of the given shape:
// -1 for one scale for the whole tensor.
func perAxis(n *nodeCtx, in, scale []int) (int, error) {
	if len(scale) == 0 || (len(scale) == 1 && scale[0] == 1) {
		return -1, nil
	}
	if len(scale) != 1 {
		return 0, fmt.Errorf("scale of shape %s is neither a scalar nor a vector", shapeString(scale))
	}
	axis, err := n.axis("axis", 1, len(in))
	if err != nil {
		return 0, err
	}
	if in[axis] >= 0 && scale[0] >= 0 && in[axis] != scale[0] {
		return 0, fmt.Errorf("scale of shape %s for axis %d of %s", shapeString(scale), axis, shapeString(in))
	}
	return axis, nil
}

func compileQuantize(n *nodeCtx) (kernel, error) {
	if err := n.arity(2, 3, 1, 1); err != nil {
		return nil, err
	}
	if err := refuseBlocked(n); err != nil {
		return nil, err
	}
	if err := n.needTypes(0, Float32); err != nil {
		return nil, err
	}
	if err := n.needTypes(1, Float32); err != nil {
		return nil, err
	}
	out := Uint8
	if n.has(2) {
		if err := n.needTypes(2, Uint8, Int8); err != nil {
			return nil, err
		}
		out = n.dtype(2)
	}
	axis, err := perAxis(n, n.shape(0), n.shape(1))
	if err != nil {
		return nil, err
	}
	n.setOutTensor(0, out, n.shape(0))
	return &linearQuantKernel{axis: axis, out: out, quantize: true}, nil
}

func compileDequantize(n *nodeCtx) (kernel, error) {
	if err := n.arity(2, 3, 1, 1); err != nil {
		return nil, err
	}
	if err := refuseBlocked(n); err != nil {
		return nil, err
	}
	if err := n.needTypes(0, Uint8, Int8, Int32); err != nil {
		return nil, err
	}
	if err := n.needTypes(1, Float32); err != nil {
		return nil, err
	}
	if err := n.sameType(2); err != nil {
		return nil, err
	}
	axis, err := perAxis(n, n.shape(0), n.shape(1))
	if err != nil {
		return nil, err
	}
	n.setOutTensor(0, Float32, n.shape(0))
	return &linearQuantKernel{axis: axis, out: Float32}, nil
}

// linearQuantKernel is QuantizeLinear (y = saturate(round(x / scale) + zero point)) or
// DequantizeLinear (y = (x − zero point) · scale), per tensor or per slice along axis.
type linearQuantKernel struct {
	axis     int // -1: per tensor
	out      DType
	quantize bool
}

func (k *linearQuantKernel) run(x *exec, in, out []*Tensor) error {
	t, scale := in[0], in[1]
	var zp *Tensor
	if len(in) > 2 {
		zp = in[2]
	}
	outer, size, inner := 1, 1, t.Len()
	if k.axis >= 0 {
		if k.axis >= len(t.Shape) {
			return fmt.Errorf("axis %d is out of range for shape %v", k.axis, t.Shape)
		}
		outer, size, inner = product(t.Shape[:k.axis]), t.Shape[k.axis], product(t.Shape[k.axis+1:])
	}
	if scale.Len() != size || (zp != nil && zp.Len() != size) {
		return fmt.Errorf("scale %v and zero point for %d slices", scale.Shape, size)
	}
	zps := x.scratch(0)
	if zp != nil {
		if err := castInto(zps, zp, Float64); err != nil {
			return err
		}
	} else if err := zps.reset(Float64, size); err != nil {
		return err
	} else {
		clear(zps.Float64)
	}
	o := out[0]
	if err := o.reset(k.out, t.Shape...); err != nil {
		return err
	}
	vals := x.scratch(1)
	if err := castInto(vals, t, Float64); err != nil {
		return err
	}
	lo, hi := quantRange(k.out)
	res := x.scratch(2)
	if err := res.reset(Float64, t.Shape...); err != nil {
		return err
	}
	sc := scale.Float32[:size]
	for b := range outer {
		for s := range size {
			z, f := zps.Float64[s], sc[s]
			off := (b*size + s) * inner
			for i, v := range vals.Float64[off : off+inner] {
				if k.quantize {
					// x / scale in float32, rounded before the zero point is added
					res.Float64[off+i] = saturate(math.RoundToEven(float64(float32(v)/f))+z, lo, hi)
				} else {
					res.Float64[off+i] = float64(float32(v-z) * f)
				}
			}
		}
	}
	return castInto(o, res, k.out)
}

func compileDynamicQuantize(n *nodeCtx) (kernel, error) {
	if err := n.arity(1, 1, 1, 3); err != nil {
		return nil, err
	}
	if err := n.needTypes(0, Float32); err != nil {
		return nil, err
	}
	n.setOutTensor(0, Uint8, n.shape(0))
	n.setOutTensor(1, Float32, []int{})
	n.setOutTensor(2, Uint8, []int{})
	return kernelFunc(runDynamicQuantize), nil
}

// runDynamicQuantize maps the range of x, widened to hold 0, onto 0..255.
func runDynamicQuantize(x *exec, in, out []*Tensor) error {
	t := in[0]
	var lo, hi float32
	for _, v := range t.Float32[:t.Len()] {
		if math.IsNaN(float64(v)) {
			return fmt.Errorf("input holds NaN")
		}
		lo, hi = min(lo, v), max(hi, v)
	}
	scale := float32(1)
	if hi != lo {
		scale = hi - lo
	}
	scale /= 255
	zp := math.RoundToEven(math.Min(math.Max(float64(0-lo/scale), 0), 255))
	if err := out[0].reset(Uint8, t.Shape...); err != nil {
		return err
	}
	for i, v := range t.Float32[:t.Len()] {
		out[0].Uint8[i] = uint8(saturate(math.RoundToEven(float64(v/scale))+zp, 0, 255))
	}
	for i, v := range []float64{float64(scale), zp} {
		if len(out) > i+1 {
			dt := []DType{Float32, Uint8}[i]
			if err := out[i+1].reset(dt); err != nil {
				return err
			}
			if dt == Float32 {
				out[i+1].Float32[0] = float32(v)
			} else {
				out[i+1].Uint8[0] = uint8(v)
			}
		}
	}
	return nil
}

// integerOperand checks that input i is 8-bit and its zero point (input zp, if given) has its
// type.
func integerOperand(n *nodeCtx, i, zp int) error {
	if err := n.needTypes(i, Uint8, Int8); err != nil {
		return err
	}
	if n.has(zp) && n.dtype(zp) != n.dtype(i) {
		return fmt.Errorf("zero point %d has type %s, its operand %s", zp, n.dtype(zp), n.dtype(i))
	}
	if n.has(zp) && static(n.shape(zp)) && product(n.shape(zp)) != 1 {
		return unsupported("%s with a zero point of shape %s (one per tensor only)", n.opType(), shapeString(n.shape(zp)))
	}
	return nil
}

func compileMatMulInteger(n *nodeCtx) (kernel, error) {
	if err := n.arity(2, 4, 1, 1); err != nil {
		return nil, err
	}
	if err := integerOperand(n, 0, 2); err != nil {
		return nil, err
	}
	if err := integerOperand(n, 1, 3); err != nil {
		return nil, err
	}
	shape, err := matmulShape(n, n.shape(0), n.shape(1))
	if err != nil {
		return nil, err
	}
	n.setOutTensor(0, Int32, shape)
	n.keepStep()
	return &intMatMulKernel{a: 0, azp: 2, b: 1, bzp: 3}, nil
}

func compileQLinearMatMul(n *nodeCtx) (kernel, error) {
	if err := n.arity(8, 8, 1, 1); err != nil {
		return nil, err
	}
	if err := integerOperand(n, 0, 2); err != nil {
		return nil, err
	}
	if err := integerOperand(n, 3, 5); err != nil {
		return nil, err
	}
	if err := n.needTypes(7, Uint8, Int8); err != nil {
		return nil, err
	}
	for _, i := range []int{1, 4, 6} {
		if err := n.needTypes(i, Float32); err != nil {
			return nil, err
		}
	}
	shape, err := matmulShape(n, n.shape(0), n.shape(3))
	if err != nil {
		return nil, err
	}
	n.setOutTensor(0, n.dtype(7), shape)
	n.keepStep()
	return &intMatMulKernel{a: 0, azp: 2, b: 3, bzp: 5, requant: true}, nil
}

// intMatMulKernel multiplies (A − a_zero_point)·(B − b_zero_point) with MatMul's broadcasting,
// exactly; QLinearMatMul then requantizes by a_scale·b_scale/y_scale onto y_zero_point.
type intMatMulKernel struct {
	a, azp, b, bzp int
	requant        bool
}

func (k *intMatMulKernel) run(x *exec, in, out []*Tensor) error {
	var ops [2]*Tensor
	for i, pair := range [2][2]int{{k.a, k.azp}, {k.b, k.bzp}} {
		t := in[pair[0]]
		var zp *Tensor
		if pair[1] < len(in) {
			zp = in[pair[1]]
		}
		if zp != nil && zp.Len() != 1 {
			return unsupported("a zero point per row or column (shape %v)", zp.Shape)
		}
		f := x.scratch(i)
		if err := castInto(f, t, Int64); err != nil {
			return err
		}
		if zp != nil {
			z := x.scratch(2)
			if err := castInto(z, zp, Int64); err != nil {
				return err
			}
			for j := range f.Int64 {
				f.Int64[j] -= z.Int64[0]
			}
		}
		ops[i] = f
	}
	prod := x.scratch(3)
	if err := (&matmulKernel{dtype: Int64}).run(x, ops[:], []*Tensor{prod}); err != nil {
		return err
	}
	if !k.requant {
		return castInto(out[0], prod, Int32)
	}
	for _, i := range []int{1, 4, 6} {
		if in[i].Len() != 1 {
			return unsupported("QLinearMatMul with a scale per row or column (shape %v)", in[i].Shape)
		}
	}
	yzp := in[7]
	if yzp.Len() != 1 {
		return unsupported("QLinearMatMul with a zero point per column (shape %v)", yzp.Shape)
	}
	z := x.scratch(2)
	if err := castInto(z, yzp, Float64); err != nil {
		return err
	}
	mult := float64(in[1].Float32[0] * in[4].Float32[0] / in[6].Float32[0])
	return requantize(x, out[0], prod, yzp.DType, func(int) (float64, float64) { return mult, z.Float64[0] })
}

// requantize writes round(acc·mult + zero point), saturated, as dt; scaleOf gives the
// multiplier and zero point of element i.
func requantize(x *exec, o, acc *Tensor, dt DType, scaleOf func(i int) (mult, zp float64)) error {
	f := x.scratch(4)
	if err := castInto(f, acc, Float64); err != nil {
		return err
	}
	lo, hi := quantRange(dt)
	for i, v := range f.Float64 {
		m, z := scaleOf(i)
		f.Float64[i] = saturate(v*m+z, lo, hi)
	}
	return castInto(o, f, dt)
}

func compileConvInteger(n *nodeCtx) (kernel, error) {
	return compileQuantConv(n, false)
}

func compileQLinearConv(n *nodeCtx) (kernel, error) {
	return compileQuantConv(n, true)
}

// compileQuantConv: ConvInteger (x, w, x_zero_point, w_zero_point) or QLinearConv (x, x_scale,
// x_zero_point, w, w_scale, w_zero_point, y_scale, y_zero_point, B) as Conv over the operands
// with their zero points taken off, in float64.
func compileQuantConv(n *nodeCtx, requant bool) (kernel, error) {
	k := &quantConvKernel{x: 0, w: 1, xzp: 2, wzp: 3, bias: -1, requant: requant}
	minIn, maxIn := 2, 4
	if requant {
		k.w, k.xzp, k.wzp, k.bias = 3, 2, 5, 8
		minIn, maxIn = 8, 9
	}
	if err := n.arity(minIn, maxIn, 1, 1); err != nil {
		return nil, err
	}
	if err := integerOperand(n, k.x, k.xzp); err != nil {
		return nil, err
	}
	if err := n.needTypes(k.w, Uint8, Int8); err != nil {
		return nil, err
	}
	if requant {
		for _, i := range []int{1, 4, 6} {
			if err := n.needTypes(i, Float32); err != nil {
				return nil, err
			}
		}
		if err := n.needTypes(7, Uint8, Int8); err != nil {
			return nil, err
		}
		if n.has(8) {
			if err := n.needTypes(8, Int32); err != nil {
				return nil, err
			}
		}
	}
	in, err := spatialInput(n)
	if err != nil {
		return nil, err
	}
	ws := n.shape(k.w)
	if len(ws) != len(in) {
		return nil, fmt.Errorf("weights of shape %s do not have the input's rank %d", shapeString(ws), len(in))
	}
	win, err := readWindow(n, len(in)-2, false)
	if err != nil {
		return nil, err
	}
	group, err := n.attrInt("group", 1)
	if err != nil {
		return nil, err
	}
	if group < 1 || group > maxWindowAttr {
		return nil, fmt.Errorf("group %d", group)
	}
	k.conv = convKernel{convParams: convParams{win: win, group: int(group), dtype: Float64, wShape: ws}}
	out, err := win.outShape(n, in, ws[0], ws[2:])
	if err != nil {
		return nil, err
	}
	dt := Int32
	if requant {
		dt = n.dtype(7)
	}
	n.setOutTensor(0, dt, out)
	n.keepStep()
	return k, nil
}

type quantConvKernel struct {
	x, w, xzp, wzp, bias int
	requant              bool
	conv                 convKernel
}

// centered is input i less its zero point (input zp: one value, or with perChannel one per
// output channel of the weights), as float64 in scratch slot.
func centered(x *exec, in []*Tensor, i, zp, slot int, perChannel bool) (*Tensor, error) {
	f := x.scratch(slot)
	if err := castInto(f, in[i], Float64); err != nil {
		return nil, err
	}
	if zp >= len(in) || in[zp] == nil {
		return f, nil
	}
	z := x.scratch(slot + 1)
	if err := castInto(z, in[zp], Float64); err != nil {
		return nil, err
	}
	per := 1
	switch {
	case z.Len() == 1:
		per = len(f.Float64)
	case perChannel && len(f.Shape) > 0 && z.Len() == f.Shape[0] && f.Shape[0] > 0:
		per = len(f.Float64) / f.Shape[0]
	default:
		return nil, fmt.Errorf("zero point of shape %v for input of shape %v", z.Shape, f.Shape)
	}
	for j := range f.Float64 {
		f.Float64[j] -= z.Float64[j/per]
	}
	return f, nil
}

func (k *quantConvKernel) run(x *exec, in, out []*Tensor) error {
	xf, err := centered(x, in, k.x, k.xzp, 5, false)
	if err != nil {
		return err
	}
	wf, err := centered(x, in, k.w, k.wzp, 7, true)
	if err != nil {
		return err
	}
	args := []*Tensor{xf, wf}
	if k.bias >= 0 && k.bias < len(in) && in[k.bias] != nil {
		b := x.scratch(9)
		if err := castInto(b, in[k.bias], Float64); err != nil {
			return err
		}
		args = append(args, b)
	}
	acc := x.scratch(10)
	if err := k.conv.run(x, args, []*Tensor{acc}); err != nil {
		return err
	}
	if !k.requant {
		return castInto(out[0], acc, Int32)
	}
	xs, ws, ys, yzp := in[1], in[4], in[6], in[7]
	m := acc.Shape[1]
	if xs.Len() != 1 || ys.Len() != 1 || yzp.Len() != 1 || (ws.Len() != 1 && ws.Len() != m) {
		return fmt.Errorf("QLinearConv's scales %v, %v, %v and zero point %v for %d channels", xs.Shape, ws.Shape, ys.Shape, yzp.Shape, m)
	}
	z := x.scratch(2)
	if err := castInto(z, yzp, Float64); err != nil {
		return err
	}
	inner := product(acc.Shape[2:])
	return requantize(x, out[0], acc, yzp.DType, func(i int) (float64, float64) {
		c := 0
		if ws.Len() > 1 {
			c = (i / max(inner, 1)) % m
		}
		return float64(xs.Float32[0] * ws.Float32[c] / ys.Float32[0]), z.Float64[0]
	})
}
