package model

// Broadcasting elementwise operators of two or more inputs: arithmetic (Add, Sub, Mul, Div, Pow,
// Mod, PRelu), the variadic Sum, Mean, Min and Max, comparisons, logic, Where.

import (
	"errors"
	"fmt"
	"math"
)

type binOp uint8

const (
	opAdd binOp = iota
	opSub
	opMul
	opDiv
	opMin
	opMax
	opPow
	opMod  // integer Mod: the sign of the divisor, like Python
	opFmod // Mod with fmod=1: the sign of the dividend, like C
	opPRelu
)

var numericTypes = []DType{Float32, Float64, Int8, Int16, Int32, Int64, Uint8, Uint16, Uint32, Uint64}

func init() {
	for name, op := range map[string]binOp{"Add": opAdd, "Sub": opSub, "Mul": opMul, "Div": opDiv} {
		register(opImpl{domain: domainONNX, name: name, minOpset: 7, maxOpset: maxOpsetONNX,
			compile: func(n *nodeCtx) (kernel, error) { return compileBinary(n, op) }})
	}
	register(
		opImpl{domain: domainONNX, name: "Pow", minOpset: 7, maxOpset: maxOpsetONNX, compile: compilePow},
		opImpl{domain: domainONNX, name: "Mod", minOpset: 10, maxOpset: maxOpsetONNX, compile: compileMod},
		opImpl{domain: domainONNX, name: "PRelu", minOpset: 7, maxOpset: maxOpsetONNX,
			compile: func(n *nodeCtx) (kernel, error) { return compileBinary(n, opPRelu) }},
	)
	for name, op := range map[string]binOp{"Sum": opAdd, "Mean": opAdd, "Min": opMin, "Max": opMax} {
		mean := name == "Mean"
		register(opImpl{domain: domainONNX, name: name, minOpset: 8, maxOpset: maxOpsetONNX,
			compile: func(n *nodeCtx) (kernel, error) { return compileVariadic(n, op, mean) }})
	}
	for name, op := range map[string]cmpOp{"Equal": cmpEq, "Less": cmpLt, "Greater": cmpGt, "LessOrEqual": cmpLe, "GreaterOrEqual": cmpGe} {
		minOpset := int64(7)
		if op == cmpLe || op == cmpGe {
			minOpset = 12
		}
		register(opImpl{domain: domainONNX, name: name, minOpset: minOpset, maxOpset: maxOpsetONNX,
			compile: func(n *nodeCtx) (kernel, error) { return compileCompare(n, op) }})
	}
	for name, op := range map[string]cmpOp{"And": logAnd, "Or": logOr, "Xor": logXor} {
		register(opImpl{domain: domainONNX, name: name, minOpset: 7, maxOpset: maxOpsetONNX,
			compile: func(n *nodeCtx) (kernel, error) { return compileLogic(n, op) }})
	}
	register(opImpl{domain: domainONNX, name: "Where", minOpset: 9, maxOpset: maxOpsetONNX, compile: compileWhere})
}

// binaryOperands checks the two inputs of a broadcast operator (same type, one of types) and
// infers the output shape.
func binaryOperands(n *nodeCtx, types []DType) ([]int, error) {
	if err := n.arity(2, 2, 1, 1); err != nil {
		return nil, err
	}
	if err := n.needTypes(0, types...); err != nil {
		return nil, err
	}
	if err := n.sameType(1); err != nil {
		return nil, err
	}
	return broadcastDims(n, n.shape(0), n.shape(1))
}

func compileBinary(n *nodeCtx, op binOp) (kernel, error) {
	types := numericTypes
	if op == opPRelu {
		types = []DType{Float32, Float64, Int32, Int64, Uint32, Uint64}
	}
	shape, err := binaryOperands(n, types)
	if err != nil {
		return nil, err
	}
	if op == opPRelu && len(shape) != len(n.shape(0)) {
		return nil, fmt.Errorf("slope of shape %s does not broadcast to X of shape %s", shapeString(n.shape(1)), shapeString(n.shape(0)))
	}
	dt := n.dtype(0)
	n.setOutTensor(0, dt, shape)
	return &binaryKernel{op: op, dtype: dt}, nil
}

func compilePow(n *nodeCtx) (kernel, error) {
	if err := n.arity(2, 2, 1, 1); err != nil {
		return nil, err
	}
	if err := n.needTypes(0, Float32, Float64, Int32, Int64); err != nil {
		return nil, err
	}
	if err := n.needTypes(1, numericTypes...); err != nil {
		return nil, err
	}
	shape, err := broadcastDims(n, n.shape(0), n.shape(1))
	if err != nil {
		return nil, err
	}
	n.setOutTensor(0, n.dtype(0), shape)
	return &powKernel{base: n.dtype(0), exp: n.dtype(1)}, nil
}

func compileMod(n *nodeCtx) (kernel, error) {
	if err := n.arity(2, 2, 1, 1); err != nil {
		return nil, err
	}
	fmod, err := n.attrInt("fmod", 0)
	if err != nil {
		return nil, err
	}
	if fmod == 1 {
		return compileBinary(n, opFmod)
	}
	if n.has(0) && n.dtype(0).isFloat() {
		return nil, errors.New("Mod of floating-point inputs needs fmod=1")
	}
	return compileBinary(n, opMod)
}

type binaryKernel struct {
	op    binOp
	dtype DType
}

func (k *binaryKernel) run(x *exec, in, out []*Tensor) error {
	return binaryInto(x, k.op, k.dtype, out[0], in[0], in[1], nil)
}

// binaryInto computes o = a op b with broadcasting. With shape given, o has that shape (a
// variadic operator's final shape) and a may be o itself.
func binaryInto(x *exec, op binOp, dt DType, o, a, b *Tensor, shape []int) error {
	var buf [maxRank]int
	if shape == nil {
		s, err := runBroadcast(&buf, a.Shape, b.Shape, nil)
		if err != nil {
			return err
		}
		if err := o.reset(dt, s...); err != nil {
			return err
		}
	}
	f := binaryFns[dt]
	if f == nil {
		return fmt.Errorf("element type %s is not supported", dt)
	}
	bc := x.broadcaster()
	bc.init(o.Shape, a.Shape, b.Shape, nil)
	return f(op, bc, o, a, b)
}

var binaryFns = numeric(binaryOn[float32], binaryOn[float64], binaryOn[int8], binaryOn[int16], binaryOn[int32],
	binaryOn[int64], binaryOn[uint8], binaryOn[uint16], binaryOn[uint32], binaryOn[uint64])

func binaryOn[T number](op binOp, bc *bcast, o, a, b *Tensor) error {
	return binaryT(op, bc, data[T](o), data[T](a), data[T](b))
}

func binaryT[T number](op binOp, bc *bcast, o, a, b []T) error {
	if (op == opDiv || op == opMod || op == opFmod) && !isFloatT[T]() {
		for _, v := range b {
			if v == 0 {
				return errors.New("integer division by zero")
			}
		}
	}
	for r := range bc.runs {
		oa, ob, _ := bc.offsets(r)
		binLoop(op, o[r*bc.run:(r+1)*bc.run], operand(bc, 0, a, oa), operand(bc, 1, b, ob))
	}
	return nil
}

func isFloatT[T number]() bool {
	var z T
	switch any(z).(type) {
	case float32, float64:
		return true
	}
	return false
}

// binLoop computes one run: a and b are each as long as o, or one element repeated.
func binLoop[T number](op binOp, o, a, b []T) {
	switch op {
	case opAdd:
		switch {
		case len(a) == len(o) && len(b) == len(o):
			for i := range o {
				o[i] = a[i] + b[i]
			}
		case len(b) == 1 && len(a) == len(o):
			y := b[0]
			for i := range o {
				o[i] = a[i] + y
			}
		default:
			elementwise(o, a, b, func(x, y T) T { return x + y })
		}
	case opSub:
		switch {
		case len(a) == len(o) && len(b) == len(o):
			for i := range o {
				o[i] = a[i] - b[i]
			}
		case len(b) == 1 && len(a) == len(o):
			y := b[0]
			for i := range o {
				o[i] = a[i] - y
			}
		default:
			elementwise(o, a, b, func(x, y T) T { return x - y })
		}
	case opMul:
		switch {
		case len(a) == len(o) && len(b) == len(o):
			for i := range o {
				o[i] = a[i] * b[i]
			}
		case len(b) == 1 && len(a) == len(o):
			y := b[0]
			for i := range o {
				o[i] = a[i] * y
			}
		default:
			elementwise(o, a, b, func(x, y T) T { return x * y })
		}
	case opDiv:
		switch {
		case len(a) == len(o) && len(b) == len(o):
			for i := range o {
				o[i] = a[i] / b[i]
			}
		case len(b) == 1 && len(a) == len(o):
			y := b[0]
			for i := range o {
				o[i] = a[i] / y
			}
		default:
			elementwise(o, a, b, func(x, y T) T { return x / y })
		}
	case opMin:
		elementwise(o, a, b, minNaN[T])
	case opMax:
		elementwise(o, a, b, maxNaN[T])
	case opMod:
		elementwise(o, a, b, modFloor[T])
	case opFmod:
		elementwise(o, a, b, modTrunc[T])
	case opPRelu:
		elementwise(o, a, b, func(x, slope T) T {
			if x < 0 {
				return x * slope
			}
			return x
		})
	}
}

// elementwise is the general run loop, for operators and operand patterns off the fast paths.
func elementwise[A, B, U any](o []U, a []A, b []B, f func(x A, y B) U) {
	sa, sb := 0, 0
	if len(a) == len(o) {
		sa = 1
	}
	if len(b) == len(o) {
		sb = 1
	}
	for i := range o {
		o[i] = f(a[i*sa], b[i*sb])
	}
}

// minNaN and maxNaN propagate NaN, as numpy's minimum and maximum (and onnxruntime) do.
func minNaN[T number](x, y T) T {
	if x != x || x < y {
		return x
	}
	return y
}

func maxNaN[T number](x, y T) T {
	if x != x || x > y {
		return x
	}
	return y
}

func modFloor[T number](x, y T) T {
	switch v := any(x).(type) {
	case float32:
		return T(float32(pyMod(float64(v), float64(any(y).(float32)))))
	case float64:
		return T(pyMod(v, any(y).(float64)))
	}
	m := modTrunc(x, y)
	if m != 0 && (m < 0) != (y < 0) {
		m += y
	}
	return m
}

// modTrunc is C's remainder (fmod for floats); integers go through 64 bits, which holds every
// integer type exactly.
func modTrunc[T number](x, y T) T {
	switch v := any(x).(type) {
	case float32:
		return T(float32(math.Mod(float64(v), float64(any(y).(float32)))))
	case float64:
		return T(math.Mod(v, any(y).(float64)))
	case uint64:
		return T(v % any(y).(uint64))
	}
	return T(int64(x) % int64(y))
}

func pyMod(x, y float64) float64 {
	m := math.Mod(x, y)
	if m != 0 && (m < 0) != (y < 0) {
		m += y
	}
	return m
}

// powKernel raises a float or integer base to an exponent of any numeric type.
type powKernel struct{ base, exp DType }

func (k *powKernel) run(x *exec, in, out []*Tensor) error {
	a, b := in[0], in[1]
	var buf [maxRank]int
	shape, err := runBroadcast(&buf, a.Shape, b.Shape, nil)
	if err != nil {
		return err
	}
	o := out[0]
	if err := o.reset(k.base, shape...); err != nil {
		return err
	}
	// The exponent is read as float64 whatever its type (exactly, for the sizes exponents have).
	e := x.scratch(0)
	if err := castInto(e, b, Float64); err != nil {
		return err
	}
	bc := x.broadcaster()
	bc.init(o.Shape, a.Shape, b.Shape, nil)
	switch k.base {
	case Float32:
		powT(bc, data[float32](o), data[float32](a), data[float64](e), func(b float32, p float64) float32 {
			if p == 2 {
				return b * b
			}
			return float32(math.Pow(float64(b), p))
		})
	case Float64:
		powT(bc, data[float64](o), data[float64](a), data[float64](e), math.Pow)
	case Int32:
		powT(bc, data[int32](o), data[int32](a), data[float64](e), func(b int32, p float64) int32 { return int32(intPow(int64(b), p)) })
	case Int64:
		powT(bc, data[int64](o), data[int64](a), data[float64](e), intPow)
	}
	return nil
}

func powT[T any](bc *bcast, o, a []T, e []float64, f func(T, float64) T) {
	for r := range bc.runs {
		oa, ob, _ := bc.offsets(r)
		elementwise(o[r*bc.run:(r+1)*bc.run], operand(bc, 0, a, oa), operand(bc, 1, e, ob), f)
	}
}

// intPow is an integer power by squaring (negative exponents truncate toward zero, as C does).
func intPow(b int64, p float64) int64 {
	if p < 0 {
		switch b {
		case 1:
			return 1
		case -1:
			if int64(p)%2 == 0 {
				return 1
			}
			return -1
		}
		return 0
	}
	r := int64(1)
	for e := int64(p); e > 0; e >>= 1 {
		if e&1 == 1 {
			r *= b
		}
		b *= b
	}
	return r
}

// compileVariadic compiles Sum, Mean, Min and Max of one or more inputs.
func compileVariadic(n *nodeCtx, op binOp, mean bool) (kernel, error) {
	if err := n.arity(1, math.MaxInt, 1, 1); err != nil {
		return nil, err
	}
	types := []DType{Float32, Float64}
	if (op == opMin || op == opMax) && n.opset >= 12 {
		types = numericTypes
	}
	if err := n.needTypes(0, types...); err != nil {
		return nil, err
	}
	shapes := make([][]int, n.numIn())
	for i := range shapes {
		if !n.has(i) {
			return nil, fmt.Errorf("input %d is empty", i)
		}
		shapes[i] = n.shape(i)
	}
	if err := n.sameType(seq(n.numIn())...); err != nil {
		return nil, err
	}
	shape, err := broadcastDims(n, shapes...)
	if err != nil {
		return nil, err
	}
	n.setOutTensor(0, n.dtype(0), shape)
	return &variadicKernel{op: op, mean: mean, dtype: n.dtype(0)}, nil
}

func seq(n int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = i
	}
	return s
}

type variadicKernel struct {
	op    binOp
	mean  bool
	dtype DType
}

func (k *variadicKernel) run(x *exec, in, out []*Tensor) error {
	// runBroadcast must not write where it reads: the shape so far and the next one alternate
	// between two arrays.
	var bufs [2][maxRank]int
	shape := bufs[0][:0]
	for i, t := range in {
		s, err := runBroadcast(&bufs[(i+1)%2], shape, t.Shape, nil)
		if err != nil {
			return err
		}
		shape = s
	}
	o := out[0]
	if err := o.reset(k.dtype, shape...); err != nil {
		return err
	}
	if len(in) == 1 {
		copyElems(o, 0, in[0], 0, o.Len())
	} else if err := binaryInto(x, k.op, k.dtype, o, in[0], in[1], o.Shape); err != nil {
		return err
	}
	for _, t := range in[min(2, len(in)):] {
		if err := binaryInto(x, k.op, k.dtype, o, o, t, o.Shape); err != nil {
			return err
		}
	}
	if k.mean {
		scale := 1 / float64(len(in))
		switch k.dtype {
		case Float32:
			for i, v := range data[float32](o) {
				o.Float32[i] = float32(float64(v) * scale)
			}
		case Float64:
			for i, v := range data[float64](o) {
				o.Float64[i] = v * scale
			}
		}
	}
	return nil
}

type cmpOp uint8

const (
	cmpEq cmpOp = iota
	cmpLt
	cmpGt
	cmpLe
	cmpGe
	logAnd
	logOr
	logXor
)

func compileCompare(n *nodeCtx, op cmpOp) (kernel, error) {
	types := numericTypes
	if op == cmpEq {
		types = append([]DType{Bool, String}, numericTypes...)
	}
	shape, err := binaryOperands(n, types)
	if err != nil {
		return nil, err
	}
	n.setOutTensor(0, Bool, shape)
	return &compareKernel{op: op, dtype: n.dtype(0)}, nil
}

func compileLogic(n *nodeCtx, op cmpOp) (kernel, error) {
	shape, err := binaryOperands(n, []DType{Bool})
	if err != nil {
		return nil, err
	}
	n.setOutTensor(0, Bool, shape)
	return &compareKernel{op: op, dtype: Bool}, nil
}

type compareKernel struct {
	op    cmpOp
	dtype DType
}

func (k *compareKernel) run(x *exec, in, out []*Tensor) error {
	a, b := in[0], in[1]
	var buf [maxRank]int
	shape, err := runBroadcast(&buf, a.Shape, b.Shape, nil)
	if err != nil {
		return err
	}
	o := out[0]
	if err := o.reset(Bool, shape...); err != nil {
		return err
	}
	bc := x.broadcaster()
	bc.init(o.Shape, a.Shape, b.Shape, nil)
	compareFns[k.dtype](k.op, bc, data[bool](o), a, b)
	return nil
}

var compareFns = everyType(compareOn[float32], compareOn[float64], compareOn[int8], compareOn[int16], compareOn[int32],
	compareOn[int64], compareOn[uint8], compareOn[uint16], compareOn[uint32], compareOn[uint64], compareBools, compareOn[string])

func compareOn[T ordered](op cmpOp, bc *bcast, o []bool, a, b *Tensor) {
	compareT(op, bc, o, data[T](a), data[T](b))
}

func compareBools(op cmpOp, bc *bcast, o []bool, a, b *Tensor) {
	f := boolOps[op]
	ab, bb := data[bool](a), data[bool](b)
	for r := range bc.runs {
		oa, ob, _ := bc.offsets(r)
		elementwise(o[r*bc.run:(r+1)*bc.run], operand(bc, 0, ab, oa), operand(bc, 1, bb, ob), f)
	}
}

var boolOps = map[cmpOp]func(x, y bool) bool{
	cmpEq:  func(x, y bool) bool { return x == y },
	logAnd: func(x, y bool) bool { return x && y },
	logOr:  func(x, y bool) bool { return x || y },
	logXor: func(x, y bool) bool { return x != y },
}

type ordered interface{ number | string }

func compareT[T ordered](op cmpOp, bc *bcast, o []bool, a, b []T) {
	var f func(x, y T) bool
	switch op {
	case cmpEq:
		f = func(x, y T) bool { return x == y }
	case cmpLt:
		f = func(x, y T) bool { return x < y }
	case cmpGt:
		f = func(x, y T) bool { return x > y }
	case cmpLe:
		f = func(x, y T) bool { return x <= y }
	case cmpGe:
		f = func(x, y T) bool { return x >= y }
	}
	for r := range bc.runs {
		oa, ob, _ := bc.offsets(r)
		elementwise(o[r*bc.run:(r+1)*bc.run], operand(bc, 0, a, oa), operand(bc, 1, b, ob), f)
	}
}

func compileWhere(n *nodeCtx) (kernel, error) {
	if err := n.arity(3, 3, 1, 1); err != nil {
		return nil, err
	}
	if err := n.needTypes(0, Bool); err != nil {
		return nil, err
	}
	if n.dtype(1) != n.dtype(2) {
		return nil, fmt.Errorf("X has type %s and Y %s; they must match", n.dtype(1), n.dtype(2))
	}
	if n.typ(1).kind != kindTensor || n.typ(2).kind != kindTensor {
		return nil, unsupported("Where takes tensors")
	}
	shape, err := broadcastDims(n, n.shape(0), n.shape(1), n.shape(2))
	if err != nil {
		return nil, err
	}
	n.setOutTensor(0, n.dtype(1), shape)
	return elementwiseFunc(runWhere), nil
}

func runWhere(x *exec, in, out []*Tensor) error {
	c, a, b := in[0], in[1], in[2]
	var buf [maxRank]int
	shape, err := runBroadcast(&buf, c.Shape, a.Shape, b.Shape)
	if err != nil {
		return err
	}
	o := out[0]
	if err := o.reset(a.DType, shape...); err != nil {
		return err
	}
	bc := x.broadcaster()
	bc.init(o.Shape, c.Shape, a.Shape, b.Shape)
	whereFns[a.DType](bc, data[bool](c), o, a, b)
	return nil
}

var whereFns = everyType(whereOn[float32], whereOn[float64], whereOn[int8], whereOn[int16], whereOn[int32],
	whereOn[int64], whereOn[uint8], whereOn[uint16], whereOn[uint32], whereOn[uint64], whereOn[bool], whereOn[string])

func whereOn[T elem](bc *bcast, cond []bool, o, a, b *Tensor) {
	whereT(bc, cond, data[T](o), data[T](a), data[T](b))
}

func whereT[T any](bc *bcast, cond []bool, o, a, b []T) {
	for r := range bc.runs {
		oc, oa, ob := bc.offsets(r)
		cs, as, bs := operand(bc, 0, cond, oc), operand(bc, 1, a, oa), operand(bc, 2, b, ob)
		sc, sa, sb := bc.step[0], bc.step[1], bc.step[2]
		run := o[r*bc.run : (r+1)*bc.run]
		for i := range run {
			if cs[i*sc] {
				run[i] = as[i*sa]
			} else {
				run[i] = bs[i*sb]
			}
		}
	}
}
