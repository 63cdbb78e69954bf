package model

// Elementwise operators of one input: activations, math functions, Not, Clip.

import (
	"errors"
	"fmt"
	"math"
)

// unaryDef is an elementwise math operator: its float semantics (float32 is computed through
// float64 and rounded, which is at least as accurate as a float32 implementation) and, for
// those ONNX defines on integers, its integer semantics.
type unaryDef struct {
	minOpset int64
	// float makes the function from the node's attributes.
	float func(n *nodeCtx) (func(float64) float64, error)
	// ints is the integer function, nil when the operator takes floats only; signed tells
	// whether unsigned types are refused (Neg).
	ints   func(int64) int64
	signed bool
	// intsSince is the opset from which integers are accepted.
	intsSince int64
	// f32, when set, is a float32 implementation faster than going through float64 and as
	// accurate as float32 holds (it takes no attributes).
	f32 func(float32) float32
}

func fixed(f func(float64) float64) func(n *nodeCtx) (func(float64) float64, error) {
	return func(*nodeCtx) (func(float64) float64, error) { return f, nil }
}

// withAlpha makes a function of x and the alpha attribute (default def).
func withAlpha(def float32, f func(x, alpha float64) float64) func(n *nodeCtx) (func(float64) float64, error) {
	return func(n *nodeCtx) (func(float64) float64, error) {
		a, err := n.attrFiniteFloat("alpha", def)
		if err != nil {
			return nil, err
		}
		alpha := float64(a)
		return func(x float64) float64 { return f(x, alpha) }, nil
	}
}

var unaryOps = map[string]unaryDef{
	"Abs": {minOpset: 6, float: fixed(math.Abs), ints: func(x int64) int64 {
		if x < 0 {
			return -x
		}
		return x
	}},
	"Neg":        {minOpset: 6, float: fixed(func(x float64) float64 { return -x }), ints: func(x int64) int64 { return -x }, signed: true},
	"Exp":        {minOpset: 6, float: fixed(math.Exp)},
	"Log":        {minOpset: 6, float: fixed(math.Log)},
	"Sqrt":       {minOpset: 6, float: fixed(math.Sqrt)},
	"Reciprocal": {minOpset: 6, float: fixed(func(x float64) float64 { return 1 / x })},
	"Erf":        {minOpset: 9, float: fixed(math.Erf), f32: erf32},
	"Floor":      {minOpset: 6, float: fixed(math.Floor)},
	"Ceil":       {minOpset: 6, float: fixed(math.Ceil)},
	"Round":      {minOpset: 11, float: fixed(math.RoundToEven)},
	"Sign": {minOpset: 9, float: fixed(func(x float64) float64 {
		switch {
		case x > 0:
			return 1
		case x < 0:
			return -1
		}
		return x // 0, -0 and NaN stay
	}), ints: func(x int64) int64 {
		switch {
		case x > 0:
			return 1
		case x < 0:
			return -1
		}
		return 0
	}},
	"Sin":   {minOpset: 7, float: fixed(math.Sin)},
	"Cos":   {minOpset: 7, float: fixed(math.Cos)},
	"Tan":   {minOpset: 7, float: fixed(math.Tan)},
	"Asin":  {minOpset: 7, float: fixed(math.Asin)},
	"Acos":  {minOpset: 7, float: fixed(math.Acos)},
	"Atan":  {minOpset: 7, float: fixed(math.Atan)},
	"Sinh":  {minOpset: 9, float: fixed(math.Sinh)},
	"Cosh":  {minOpset: 9, float: fixed(math.Cosh)},
	"Asinh": {minOpset: 9, float: fixed(math.Asinh)},
	"Acosh": {minOpset: 9, float: fixed(math.Acosh)},
	"Atanh": {minOpset: 9, float: fixed(math.Atanh)},
	"Relu": {minOpset: 6, float: fixed(func(x float64) float64 {
		if x < 0 {
			return 0
		}
		return x
	}), ints: func(x int64) int64 { return max(x, 0) }, signed: true, intsSince: 14},
	"Sigmoid":  {minOpset: 6, float: fixed(sigmoid64)},
	"Tanh":     {minOpset: 6, float: fixed(math.Tanh)},
	"Softplus": {minOpset: 1, float: fixed(softplus)},
	"Softsign": {minOpset: 1, float: fixed(func(x float64) float64 { return x / (1 + math.Abs(x)) })},
	"LeakyRelu": {minOpset: 6, float: withAlpha(0.01, func(x, a float64) float64 {
		if x < 0 {
			return a * x
		}
		return x
	})},
	"Elu": {minOpset: 6, float: withAlpha(1, func(x, a float64) float64 {
		if x < 0 {
			return a * (math.Exp(x) - 1)
		}
		return x
	})},
	"Celu": {minOpset: 12, float: withAlpha(1, func(x, a float64) float64 {
		return max(0, x) + min(0, a*(math.Exp(x/a)-1))
	})},
	"ThresholdedRelu": {minOpset: 10, float: withAlpha(1, func(x, a float64) float64 {
		if x > a {
			return x
		}
		return 0
	})},
	"Selu": {minOpset: 6, float: func(n *nodeCtx) (func(float64) float64, error) {
		a, err := n.attrFiniteFloat("alpha", 1.67326319217681884765625)
		if err != nil {
			return nil, err
		}
		g, err := n.attrFiniteFloat("gamma", 1.05070102214813232421875)
		if err != nil {
			return nil, err
		}
		alpha, gamma := float64(a), float64(g)
		return func(x float64) float64 {
			if x > 0 {
				return gamma * x
			}
			return gamma * (alpha*math.Exp(x) - alpha)
		}, nil
	}},
	"HardSigmoid": {minOpset: 6, float: func(n *nodeCtx) (func(float64) float64, error) {
		a, err := n.attrFiniteFloat("alpha", 0.2)
		if err != nil {
			return nil, err
		}
		b, err := n.attrFiniteFloat("beta", 0.5)
		if err != nil {
			return nil, err
		}
		alpha, beta := float64(a), float64(b)
		return func(x float64) float64 { return max(0, min(1, alpha*x+beta)) }, nil
	}},
	"HardSwish": {minOpset: 14, float: fixed(func(x float64) float64 { return x * max(0, min(1, x/6+0.5)) })},
	"Mish":      {minOpset: 18, float: fixed(func(x float64) float64 { return x * math.Tanh(softplus(x)) })},
	"Gelu": {minOpset: 20, float: func(n *nodeCtx) (func(float64) float64, error) {
		approx, err := n.attrString("approximate", "none")
		if err != nil {
			return nil, err
		}
		switch approx {
		case "none":
			return func(x float64) float64 { return 0.5 * x * (1 + math.Erf(x/math.Sqrt2)) }, nil
		case "tanh":
			k := math.Sqrt(2 / math.Pi)
			return func(x float64) float64 { return 0.5 * x * (1 + math.Tanh(k*(x+0.044715*x*x*x))) }, nil
		}
		return nil, fmt.Errorf("attribute approximate is %q, want none or tanh", approx)
	}},
}

func init() {
	for name, def := range unaryOps {
		register(opImpl{domain: domainONNX, name: name, minOpset: def.minOpset, maxOpset: maxOpsetONNX,
			compile: func(n *nodeCtx) (kernel, error) { return compileUnary(n, def) }})
	}
	register(
		opImpl{domain: domainONNX, name: "Not", minOpset: 1, maxOpset: maxOpsetONNX, compile: compileNot},
		opImpl{domain: domainONNX, name: "Clip", minOpset: 6, maxOpset: maxOpsetONNX, compile: compileClip},
	)
}

func sigmoid64(x float64) float64 { return 1 / (1 + math.Exp(-x)) }

// erf32 is erf for float32, by cubic Hermite interpolation of erf on [0, 4] in steps of 1/64
// (values and derivatives, 2/√π·e^(−x²), from math.Erf and math.Exp at init): the
// interpolation error is below 1e-9, far under float32's resolution, and the cubic is
// evaluated in float32 with Estrin's scheme (two dependent multiply-adds instead of three).
// Beyond 4, erf is ±1 in float32.
func erf32(x float32) float32 {
	a := x
	if a < 0 {
		a = -a
	}
	switch {
	case x != x:
		return x
	case a >= erfLimit:
		if x < 0 {
			return -1
		}
		return 1
	}
	u := a * erfSteps
	i := int(u)
	t := u - float32(i)
	c := &erfCubic[i&(len(erfCubic)-1)]
	v := (c[0] + c[1]*t) + t*t*(c[2]+c[3]*t)
	if x < 0 {
		return -v
	}
	return v
}

const (
	erfLimit = 4
	erfSteps = 64
)

// erfCubic holds, per interval of erf32's table, the coefficients of the cubic in the position
// t ∈ [0, 1) within the interval.
var erfCubic = func() (c [erfLimit * erfSteps][4]float32) {
	h := 1.0 / erfSteps
	deriv := func(x float64) float64 { return 2 / math.SqrtPi * math.Exp(-x*x) }
	for i := range c {
		x0, x1 := float64(i)*h, float64(i+1)*h
		f0, f1 := math.Erf(x0), math.Erf(x1)
		d0, d1 := deriv(x0)*h, deriv(x1)*h
		// The Hermite basis expanded in powers of t.
		c[i] = [4]float32{float32(f0), float32(d0), float32(3*(f1-f0) - 2*d0 - d1), float32(2*(f0-f1) + d0 + d1)}
	}
	return c
}()

// softplus is log(1+e^x), computed so that it neither overflows for large x nor loses the
// small values of very negative ones.
func softplus(x float64) float64 {
	if x > 0 {
		return x + math.Log1p(math.Exp(-x))
	}
	return math.Log1p(math.Exp(x))
}

func compileUnary(n *nodeCtx, def unaryDef) (kernel, error) {
	if err := n.arity(1, 1, 1, 1); err != nil {
		return nil, err
	}
	types := []DType{Float32, Float64}
	if def.ints != nil && n.opset >= def.intsSince {
		types = append(types, Int8, Int16, Int32, Int64)
		if !def.signed {
			types = append(types, Uint8, Uint16, Uint32, Uint64)
		}
	}
	if err := n.needTypes(0, types...); err != nil {
		return nil, err
	}
	f, err := def.float(n)
	if err != nil {
		return nil, err
	}
	dt := n.dtype(0)
	n.setOutTensor(0, dt, n.shape(0))
	if dt == Float32 {
		// The activations dense layers fuse have float32 loops of their own.
		switch n.opType() {
		case "Relu":
			return &activationKernel{act: actRelu, dtype: dt}, nil
		case "Sigmoid":
			return &activationKernel{act: actSigmoid, dtype: dt}, nil
		case "Tanh":
			return &activationKernel{act: actTanh, dtype: dt}, nil
		case "LeakyRelu":
			alpha, _ := n.attrFiniteFloat("alpha", 0.01)
			return &activationKernel{act: actLeakyRelu, alpha: alpha, dtype: dt}, nil
		case "Gelu":
			if approx, _ := n.attrString("approximate", "none"); approx == "none" {
				return &activationKernel{act: actGelu, dtype: dt}, nil
			}
		}
	}
	return &mapKernel{f: f, f32: def.f32, erf: n.opType() == "Erf", sqrt: n.opType() == "Sqrt", ints: def.ints, dtype: dt}, nil
}

// mapKernel applies a function to every element.
type mapKernel struct {
	f     func(float64) float64
	f32   func(float32) float32
	erf   bool
	sqrt  bool // for plan.fuseLayerNorm
	ints  func(int64) int64
	dtype DType
}

func (k *mapKernel) run(x *exec, in, out []*Tensor) error {
	src, o := in[0], out[0]
	if err := o.reset(k.dtype, src.Shape...); err != nil {
		return err
	}
	switch {
	case k.dtype == Float32 && k.erf:
		od := data[float32](o)
		for i, v := range data[float32](src) {
			od[i] = erf32(v) // a direct call: GELU puts Erf on every hidden unit
		}
	case k.dtype == Float32 && k.f32 != nil:
		od := data[float32](o)
		for i, v := range data[float32](src) {
			od[i] = k.f32(v)
		}
	case k.dtype == Float32:
		od := data[float32](o)
		for i, v := range data[float32](src) {
			od[i] = float32(k.f(float64(v)))
		}
	case k.dtype == Float64:
		od := data[float64](o)
		for i, v := range data[float64](src) {
			od[i] = k.f(v)
		}
	default:
		mapIntFns[k.dtype](o, src, k.ints)
	}
	return nil
}

var mapIntFns = numeric(nil, nil, mapIntsOn[int8], mapIntsOn[int16], mapIntsOn[int32], mapIntsOn[int64],
	mapIntsOn[uint8], mapIntsOn[uint16], mapIntsOn[uint32], mapIntsOn[uint64])

func mapIntsOn[T number](o, x *Tensor, f func(int64) int64) { mapInts(data[T](o), data[T](x), f) }

func mapInts[T number](o, x []T, f func(int64) int64) {
	for i, v := range x {
		o[i] = T(f(int64(v)))
	}
}

type activation uint8

const (
	actNone activation = iota
	actRelu
	actLeakyRelu
	actSigmoid
	actTanh
	actGelu // x·(1 + erf(x/√2))/2
)

// activationKernel runs the float32 activations a dense layer can fuse (see plan.fuse).
type activationKernel struct {
	act   activation
	alpha float32
	dtype DType
}

func (k *activationKernel) run(x *exec, in, out []*Tensor) error {
	src, o := in[0], out[0]
	if err := o.reset(Float32, src.Shape...); err != nil {
		return err
	}
	applyActivation(k.act, k.alpha, data[float32](o), data[float32](src))
	return nil
}

func applyActivation(act activation, alpha float32, o, x []float32) {
	x = x[:len(o)]
	switch act {
	case actNone:
		copy(o, x)
	case actRelu:
		for i, v := range x {
			o[i] = max(v, 0)
		}
	case actLeakyRelu:
		for i, v := range x {
			if v < 0 {
				v *= alpha
			}
			o[i] = v
		}
	case actSigmoid:
		for i, v := range x {
			o[i] = sigmoid(v)
		}
	case actTanh:
		for i, v := range x {
			o[i] = float32(math.Tanh(float64(v)))
		}
	case actGelu:
		for i, v := range x {
			o[i] = gelu32(v)
		}
	}
}

// gelu32 is the exact GELU in float32, x·(1 + erf(x/√2))/2, computed the way PyTorch's export
// spells it (Div by √2, Erf, Add 1, Mul by x, Mul by 0.5) so that fusing that chain changes no
// result beyond float32 rounding.
func gelu32(x float32) float32 {
	return x * (1 + erf32(x/math.Sqrt2)) * 0.5
}

// sigmoid is 1/(1+e^-v) in float32 with exp32; its absolute error is below 1e-7.
func sigmoid(v float32) float32 {
	return 1 / (1 + exp32(-v))
}

// exp32 is e^x in float32 arithmetic: x = k·ln2 + r with |r| ≤ ln2/2, then a degree-6 Taylor
// polynomial for e^r (relative error about 1.2e-7 from truncation, plus a few float32
// roundings) scaled by 2^k through the exponent bits. math.Exp in float64 costs three times as
// much, and the sigmoid of a model's last layer is the hottest loop after the dense kernels.
func exp32(x float32) float32 {
	switch {
	case x != x:
		return x
	case x > 88.72:
		return float32(math.Inf(1))
	case x < -87.33:
		return 0 // below the smallest normal float32; sigmoid and softmax need no subnormals
	}
	const (
		log2e = 1.44269504088896341
		ln2Hi = 0.693359375 // ln2 split so that k·ln2Hi is exact for the k that occur
		ln2Lo = -2.12194440e-4
	)
	k := float32(math.Floor(float64(x*log2e + 0.5)))
	r := x - k*ln2Hi - k*ln2Lo
	p := 1 + r*(1+r*(1.0/2+r*(1.0/6+r*(1.0/24+r*(1.0/120+r*(1.0/720))))))
	return p * math.Float32frombits(uint32(int32(k)+127)<<23)
}

func compileNot(n *nodeCtx) (kernel, error) {
	if err := n.arity(1, 1, 1, 1); err != nil {
		return nil, err
	}
	if err := n.needTypes(0, Bool); err != nil {
		return nil, err
	}
	n.setOutTensor(0, Bool, n.shape(0))
	return kernelFunc(func(x *exec, in, out []*Tensor) error {
		if err := out[0].reset(Bool, in[0].Shape...); err != nil {
			return err
		}
		o := data[bool](out[0])
		for i, v := range data[bool](in[0]) {
			o[i] = !v
		}
		return nil
	}), nil
}

// compileClip: before opset 11 the bounds are attributes, from 11 optional scalar inputs (which
// may be computed at run time).
func compileClip(n *nodeCtx) (kernel, error) {
	if n.opset < 11 {
		if err := n.arity(1, 1, 1, 1); err != nil {
			return nil, err
		}
		if err := n.needTypes(0, Float32, Float64); err != nil {
			return nil, err
		}
		lo, err := n.attrFloat("min", float32(math.Inf(-1)))
		if err != nil {
			return nil, err
		}
		hi, err := n.attrFloat("max", float32(math.Inf(1)))
		if err != nil {
			return nil, err
		}
		if lo != lo || hi != hi {
			return nil, errors.New("attribute min or max is NaN")
		}
		n.setOutTensor(0, n.dtype(0), n.shape(0))
		return &clipKernel{lo: float64(lo), hi: float64(hi), attrs: true, dtype: n.dtype(0)}, nil
	}
	if err := n.arity(1, 3, 1, 1); err != nil {
		return nil, err
	}
	types := []DType{Float32, Float64}
	if n.opset >= 12 {
		types = numericTypes
	}
	if err := n.needTypes(0, types...); err != nil {
		return nil, err
	}
	for i := 1; i < 3; i++ {
		if !n.has(i) {
			continue
		}
		if err := n.sameType(i); err != nil {
			return nil, err
		}
		if s := n.shape(i); len(s) > 1 || (len(s) == 1 && s[0] > 1) {
			return nil, fmt.Errorf("input %d has shape %s; Clip's bounds are scalars", i, shapeString(s))
		}
	}
	n.setOutTensor(0, n.dtype(0), n.shape(0))
	return &clipKernel{dtype: n.dtype(0)}, nil
}

type clipKernel struct {
	lo, hi float64
	attrs  bool
	dtype  DType
}

func (k *clipKernel) run(x *exec, in, out []*Tensor) error {
	src, o := in[0], out[0]
	if err := o.reset(k.dtype, src.Shape...); err != nil {
		return err
	}
	return clipFns[k.dtype](k, in, o, src)
}

var clipFns = numeric(clipOn[float32], clipOn[float64], clipOn[int8], clipOn[int16], clipOn[int32],
	clipOn[int64], clipOn[uint8], clipOn[uint16], clipOn[uint32], clipOn[uint64])

func clipOn[T number](k *clipKernel, in []*Tensor, o, x *Tensor) error {
	return clipT(k, in, data[T](o), data[T](x))
}

func clipT[T number](k *clipKernel, in []*Tensor, o, x []T) error {
	lo, hi := minOf[T](), maxOf[T]()
	if k.attrs {
		lo, hi = T(k.lo), T(k.hi)
		if math.IsInf(k.lo, -1) {
			lo = minOf[T]()
		}
		if math.IsInf(k.hi, 1) {
			hi = maxOf[T]()
		}
	}
	for i, p := range []*T{&lo, &hi} {
		if len(in) > i+1 && in[i+1] != nil {
			b := data[T](in[i+1])
			if len(b) != 1 {
				return fmt.Errorf("input %d has shape %v; Clip's bounds are scalars", i+1, in[i+1].Shape)
			}
			*p = b[0]
		}
	}
	for i, v := range x {
		// min(max(x, lo), hi), as numpy.clip and onnxruntime compute it (hi wins if lo > hi).
		if v < lo {
			v = lo
		}
		if v > hi {
			v = hi
		}
		o[i] = v
	}
	return nil
}

// minOf and maxOf are the extremes of a numeric type (infinities for floats).
func minOf[T number]() T {
	var z T
	switch any(z).(type) {
	case float32, float64:
		inf := math.Inf(-1)
		return T(inf)
	case int8, int16, int32, int64:
		// The most negative value: all bits but the sign bit's complement, built at run time so
		// that the conversion compiles for every T.
		bits := int64(-1) << (8*sizeOf[T]() - 1)
		return T(bits)
	}
	return 0
}

func maxOf[T number]() T {
	var z T
	switch any(z).(type) {
	case float32, float64:
		inf := math.Inf(1)
		return T(inf)
	case int8, int16, int32, int64:
		bits := int64(1)<<(8*sizeOf[T]()-1) - 1
		return T(bits)
	}
	ones := ^uint64(0) >> (64 - 8*sizeOf[T]())
	return T(ones)
}

func sizeOf[T number]() int {
	var z T
	switch any(z).(type) {
	case int8, uint8:
		return 1
	case int16, uint16:
		return 2
	case int32, uint32, float32:
		return 4
	}
	return 8
}
