package model

// Elementwise tests of floating-point values (IsNaN, IsInf) and bit shifts (BitShift).

import (
	"fmt"
	"math"
)

func init() {
	register(
		opImpl{domain: domainONNX, name: "IsNaN", minOpset: 9, maxOpset: maxOpsetONNX, compile: compileFloatTest},
		opImpl{domain: domainONNX, name: "IsInf", minOpset: 10, maxOpset: maxOpsetONNX, compile: compileFloatTest},
		opImpl{domain: domainONNX, name: "BitShift", minOpset: 11, maxOpset: maxOpsetONNX, compile: compileBitShift},
	)
}

// compileFloatTest: IsNaN, and IsInf with its detect_negative and detect_positive attributes.
func compileFloatTest(n *nodeCtx) (kernel, error) {
	if err := n.arity(1, 1, 1, 1); err != nil {
		return nil, err
	}
	if err := n.needTypes(0, Float32, Float64); err != nil {
		return nil, err
	}
	test := math.IsNaN
	if n.opType() == "IsInf" {
		neg, err := n.attrInt("detect_negative", 1)
		if err != nil {
			return nil, err
		}
		pos, err := n.attrInt("detect_positive", 1)
		if err != nil {
			return nil, err
		}
		test = func(v float64) bool { return (neg != 0 && math.IsInf(v, -1)) || (pos != 0 && math.IsInf(v, 1)) }
	}
	n.setOutTensor(0, Bool, n.shape(0))
	return elementwiseFunc(func(x *exec, in, out []*Tensor) error {
		t, o := in[0], out[0]
		if err := o.reset(Bool, t.Shape...); err != nil {
			return err
		}
		if t.DType == Float32 {
			for i, v := range data[float32](t) {
				o.Bool[i] = test(float64(v))
			}
			return nil
		}
		for i, v := range data[float64](t) {
			o.Bool[i] = test(v)
		}
		return nil
	}), nil
}

// compileBitShift shifts unsigned integers, broadcasting; a shift by the type's width or more
// gives 0, as onnxruntime and numpy's uint shifts do.
func compileBitShift(n *nodeCtx) (kernel, error) {
	shape, err := binaryOperands(n, []DType{Uint8, Uint16, Uint32, Uint64})
	if err != nil {
		return nil, err
	}
	dir, err := n.attrString("direction", "")
	if err != nil {
		return nil, err
	}
	if dir != "LEFT" && dir != "RIGHT" {
		return nil, fmt.Errorf("direction %q is neither LEFT nor RIGHT", dir)
	}
	left := dir == "LEFT"
	dt := n.dtype(0)
	n.setOutTensor(0, dt, shape)
	return kernelFunc(func(x *exec, in, out []*Tensor) error {
		var sb [maxRank]int
		s, err := runBroadcast(&sb, in[0].Shape, in[1].Shape, nil)
		if err != nil {
			return err
		}
		if err := out[0].reset(dt, s...); err != nil {
			return err
		}
		bc := x.broadcaster()
		bc.init(out[0].Shape, in[0].Shape, in[1].Shape, nil)
		shiftFns[dt](bc, out[0], in[0], in[1], left)
		return nil
	}), nil
}

var shiftFns = func() (t perType[func(bc *bcast, o, a, b *Tensor, left bool)]) {
	t[Uint8], t[Uint16], t[Uint32], t[Uint64] = shiftOn[uint8], shiftOn[uint16], shiftOn[uint32], shiftOn[uint64]
	return t
}()

func shiftOn[T uint8 | uint16 | uint32 | uint64](bc *bcast, o, a, b *Tensor, left bool) {
	od, ad, bd := data[T](o), data[T](a), data[T](b)
	for r := range bc.runs {
		oa, ob, _ := bc.offsets(r)
		if left {
			elementwise(od[r*bc.run:(r+1)*bc.run], operand(bc, 0, ad, oa), operand(bc, 1, bd, ob), func(x, y T) T { return x << y })
		} else {
			elementwise(od[r*bc.run:(r+1)*bc.run], operand(bc, 0, ad, oa), operand(bc, 1, bd, ob), func(x, y T) T { return x >> y })
		}
	}
}
