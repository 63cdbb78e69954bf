package model

// Cast and CastLike, and the conversions between element types they share with other
// operators.

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

func init() {
	register(
		opImpl{domain: domainONNX, name: "Cast", minOpset: 6, maxOpset: maxOpsetONNX, compile: compileCast},
		opImpl{domain: domainONNX, name: "CastLike", minOpset: 15, maxOpset: maxOpsetONNX, compile: compileCastLike},
	)
}

var castTypes = []DType{Float32, Float64, Float16, BFloat16, Int8, Int16, Int32, Int64, Uint8, Uint16, Uint32, Uint64, Bool, String}

func compileCast(n *nodeCtx) (kernel, error) {
	if err := n.arity(1, 1, 1, 1); err != nil {
		return nil, err
	}
	if err := n.needTypes(0, castTypes...); err != nil {
		return nil, err
	}
	to, err := n.attrInt("to", 0)
	if err != nil {
		return nil, err
	}
	dt, ok := dtypeOf(int32(to))
	if !ok || to == 0 {
		return nil, unsupported("Cast to element type %d, which this runtime does not hold", to)
	}
	return castTo(n, dt)
}

func compileCastLike(n *nodeCtx) (kernel, error) {
	if err := n.arity(2, 2, 1, 1); err != nil {
		return nil, err
	}
	if err := n.needTypes(0, castTypes...); err != nil {
		return nil, err
	}
	if err := n.needTypes(1, castTypes...); err != nil {
		return nil, err
	}
	return castTo(n, n.dtype(1))
}

func castTo(n *nodeCtx, dt DType) (kernel, error) {
	n.setOutTensor(0, dt, n.shape(0))
	if vals, ok := n.symInts(0); ok && (dt == Int64 || dt == Int32) {
		n.setSym(0, vals)
	}
	return elementwiseFunc(func(x *exec, in, out []*Tensor) error {
		return castInto(out[0], in[0], dt)
	}), nil
}

// castInto writes src converted to type to into dst, with ONNX's (C's) conversion rules:
// floats truncate toward zero into integers, anything non-zero is true, strings parse and
// print numbers.
func castInto(dst, src *Tensor, to DType) error {
	if err := dst.reset(to, src.Shape...); err != nil {
		return err
	}
	if src.DType == to {
		copyElems(dst, 0, src, 0, src.Len())
		return nil
	}
	switch src.DType {
	case Float16, BFloat16:
		f := make([]float32, src.Len())
		for i, b := range data[uint16](src) {
			if src.DType == Float16 {
				f[i] = halfToFloat(b)
			} else {
				f[i] = math.Float32frombits(uint32(b) << 16)
			}
		}
		return castFrom(dst, f)
	case Bool:
		b := data[bool](src)
		u := make([]uint8, len(b))
		for i, v := range b {
			if v {
				u[i] = 1
			}
		}
		return castFrom(dst, u)
	case String:
		return castFromStrings(dst, data[string](src))
	}
	if f := castFns[src.DType]; f != nil {
		return f(dst, src)
	}
	return fmt.Errorf("cannot cast from %s", src.DType)
}

var castFns = numeric(castOn[float32], castOn[float64], castOn[int8], castOn[int16], castOn[int32],
	castOn[int64], castOn[uint8], castOn[uint16], castOn[uint32], castOn[uint64])

// castOn converts between numeric types through convertTable, built once (a table built per
// call would allocate its closures on every run).
func castOn[S number](dst, src *Tensor) error {
	if f := convertTable[src.DType][dst.DType]; f != nil {
		f(dst, src)
		return nil
	}
	return castFrom(dst, data[S](src))
}

// convertTable[from][to] converts numeric tensors of the same shape.
var convertTable = numeric(convertRow[float32](), convertRow[float64](), convertRow[int8](), convertRow[int16](),
	convertRow[int32](), convertRow[int64](), convertRow[uint8](), convertRow[uint16](), convertRow[uint32](),
	convertRow[uint64]())

func convertRow[S number]() perType[func(dst, src *Tensor)] {
	return numeric(convertOn[float32, S], convertOn[float64, S], convertOn[int8, S], convertOn[int16, S],
		convertOn[int32, S], convertOn[int64, S], convertOn[uint8, S], convertOn[uint16, S], convertOn[uint32, S],
		convertOn[uint64, S])
}

func convertOn[D, S number](dst, src *Tensor) { convert(data[D](dst), data[S](src)) }

func castFrom[S number](dst *Tensor, s []S) error {
	if f := convertTable[dtypeOfGo[S]()][dst.DType]; f != nil {
		f(dst, NewTensor(dst.Shape, s))
		return nil
	}
	switch dst.DType {
	case Float16, BFloat16:
		o := data[uint16](dst)
		for i, v := range s {
			f := float32(v)
			if dst.DType == Float16 {
				o[i] = floatToHalf(f)
			} else {
				o[i] = floatToBFloat(f)
			}
		}
	case Bool:
		o := data[bool](dst)
		for i, v := range s {
			o[i] = v != 0
		}
	case String:
		o := data[string](dst)
		for i, v := range s {
			o[i] = formatNumber(v)
		}
	default:
		return fmt.Errorf("cannot cast to %s", dst.DType)
	}
	return nil
}

// convert is Go's numeric conversion, which is C's: the same rules ONNX's Cast follows (float to
// integer truncates toward zero; out-of-range values are undefined in both).
func convert[D, S number](dst []D, src []S) {
	for i, v := range src {
		dst[i] = D(v)
	}
}

// formatNumber prints a number the way numpy's str() does for the same value: the shortest
// representation that reads back to it.
func formatNumber[S number](v S) string {
	switch x := any(v).(type) {
	case float32:
		return formatFloat(float64(x), 32)
	case float64:
		return formatFloat(x, 64)
	}
	return fmt.Sprint(v)
}

func formatFloat(f float64, bits int) string {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "INF"
	case math.IsInf(f, -1):
		return "-INF"
	}
	return strconv.FormatFloat(f, 'g', -1, bits)
}

func castFromStrings(dst *Tensor, s []string) error {
	if dst.DType == Bool {
		return fmt.Errorf("cannot cast strings to bool")
	}
	f := make([]float64, len(s))
	for i, v := range s {
		x, err := parseNumber(v)
		if err != nil {
			return err
		}
		f[i] = x
	}
	if dst.DType.isInt() {
		// Integers parse exactly, not through float64.
		for i, v := range s {
			if x, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64); err == nil {
				if dst.DType == Int64 {
					dst.Int64[i] = x
					continue
				}
				f[i] = float64(x)
			}
		}
		if dst.DType == Int64 {
			for i, v := range s {
				if _, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64); err != nil {
					dst.Int64[i] = int64(f[i])
				}
			}
			return nil
		}
	}
	return castFrom(dst, f)
}

// parseNumber reads a number as numpy does when it casts strings: decimal or scientific, and
// the spellings of infinity and NaN.
func parseNumber(s string) (float64, error) {
	t := strings.TrimSpace(s)
	switch strings.ToLower(t) {
	case "inf", "+inf", "infinity", "+infinity":
		return math.Inf(1), nil
	case "-inf", "-infinity":
		return math.Inf(-1), nil
	case "nan", "+nan", "-nan":
		return math.NaN(), nil
	}
	f, err := strconv.ParseFloat(t, 64)
	if err != nil {
		return 0, fmt.Errorf("cannot cast %q to a number", s)
	}
	return f, nil
}

// halfToFloat converts IEEE 754 binary16 bits to float32 (exactly: every half is a float).
func halfToFloat(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h) & 0x3ff
	switch {
	case exp == 0 && mant == 0:
		return math.Float32frombits(sign)
	case exp == 0: // subnormal: normalise
		e := uint32(127 - 15 + 1)
		for mant&0x400 == 0 {
			mant <<= 1
			e--
		}
		mant &= 0x3ff
		return math.Float32frombits(sign | e<<23 | mant<<13)
	case exp == 0x1f:
		return math.Float32frombits(sign | 0xff<<23 | mant<<13)
	}
	return math.Float32frombits(sign | (exp+127-15)<<23 | mant<<13)
}

// floatToHalf converts float32 to binary16 bits, rounding to nearest even.
func floatToHalf(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	exp := int32(b>>23) & 0xff
	mant := b & 0x7fffff
	switch {
	case exp == 0xff:
		if mant != 0 {
			return sign | 0x7e00 // NaN
		}
		return sign | 0x7c00
	case exp-127+15 >= 0x1f:
		return sign | 0x7c00 // overflow to infinity
	case exp-127+15 <= 0:
		// Subnormal half (or zero): shift the mantissa with its implicit bit into place.
		shift := uint32(14 - (exp - 127 + 15))
		if shift > 24 {
			return sign
		}
		m := mant | 0x800000
		half := m >> (shift + 0)
		rem := m & (1<<shift - 1)
		mid := uint32(1) << (shift - 1)
		h := half >> 0
		if rem > mid || (rem == mid && h&1 == 1) {
			h++
		}
		return sign | uint16(h>>0)
	}
	h := uint32(exp-127+15)<<10 | mant>>13
	rem := mant & 0x1fff
	if rem > 0x1000 || (rem == 0x1000 && h&1 == 1) {
		h++ // may carry into the exponent, which is right (up to infinity)
	}
	return sign | uint16(h)
}

// floatToBFloat converts float32 to bfloat16 bits, rounding to nearest even.
func floatToBFloat(f float32) uint16 {
	b := math.Float32bits(f)
	if f != f {
		return uint16(b>>16) | 0x40
	}
	b += 0x7fff + (b>>16)&1
	return uint16(b >> 16)
}
