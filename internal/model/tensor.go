package model

import (
	"fmt"
	"slices"
	"strings"
)

// Tensor is a dense array of one element type, row-major. Its data sits in the field named after
// its DType (Float16 and BFloat16 as their bits in Uint16); the other fields are ignored. A field
// may be longer than the shape needs: the first Len() values count.
//
// A Tensor with Keys is a map, or a sequence of maps that all have the same keys (what ZipMap
// produces): Keys is a 1-D tensor of C keys, and the last axis of the value, C long, holds each
// map's values in the order of Keys. A sequence of N maps has shape [N, C], one map [C].
type Tensor struct {
	DType DType
	Shape []int

	Float32 []float32
	Float64 []float64
	Int8    []int8
	Int16   []int16
	Int32   []int32
	Int64   []int64
	Uint8   []uint8
	Uint16  []uint16
	Uint32  []uint32
	Uint64  []uint64
	Bool    []bool
	String  []string

	Keys *Tensor
}

// elem is the Go types tensor data comes in.
type elem interface {
	float32 | float64 | int8 | int16 | int32 | int64 | uint8 | uint16 | uint32 | uint64 | bool | string
}

// number is the element types arithmetic works on.
type number interface {
	float32 | float64 | int8 | int16 | int32 | int64 | uint8 | uint16 | uint32 | uint64
}

// NewTensor makes a tensor of the given shape over data (not copied). The DType follows from
// the Go type; []uint16 data makes a Uint16 tensor (set DType to Float16 or BFloat16 for bits).
func NewTensor[T elem](shape []int, data []T) *Tensor {
	t := &Tensor{Shape: shape, DType: dtypeOfGo[T]()}
	*field[T](t) = data
	return t
}

func dtypeOfGo[T elem]() DType {
	var z T
	switch any(z).(type) {
	case float32:
		return Float32
	case float64:
		return Float64
	case int8:
		return Int8
	case int16:
		return Int16
	case int32:
		return Int32
	case int64:
		return Int64
	case uint8:
		return Uint8
	case uint16:
		return Uint16
	case uint32:
		return Uint32
	case uint64:
		return Uint64
	case bool:
		return Bool
	}
	return String
}

// field is the data field of t that holds T. It looks the field up by t's DType (a jump table)
// and checks the type, which is cheaper than switching on T. Reading a tensor as a type other
// than its DType's is a bug in this package, never an effect of input.
func field[T elem](t *Tensor) *[]T {
	var p any
	switch t.DType {
	case Float32:
		p = &t.Float32
	case Float64:
		p = &t.Float64
	case Int64:
		p = &t.Int64
	case Int32:
		p = &t.Int32
	case Bool:
		p = &t.Bool
	case String:
		p = &t.String
	case Int8:
		p = &t.Int8
	case Int16:
		p = &t.Int16
	case Uint8:
		p = &t.Uint8
	case Uint16, Float16, BFloat16:
		p = &t.Uint16
	case Uint32:
		p = &t.Uint32
	case Uint64:
		p = &t.Uint64
	}
	f, ok := p.(*[]T)
	if !ok {
		var z T
		panic(fmt.Sprintf("model: a %s tensor read as %T", t.DType, z))
	}
	return f
}

// data is t's values as T, exactly Len() of them. The caller knows T matches t.DType.
func data[T elem](t *Tensor) []T {
	return (*field[T](t))[:t.Len()]
}

// Len is the number of elements the shape calls for (1 for a scalar).
func (t *Tensor) Len() int {
	n := 1
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

// stored is the length of the field that holds t's DType.
func (t *Tensor) stored() int {
	if f := storedFns[t.DType]; f != nil {
		return f(t)
	}
	return 0
}

var storedFns = everyType(storedOf[float32], storedOf[float64], storedOf[int8], storedOf[int16], storedOf[int32],
	storedOf[int64], storedOf[uint8], storedOf[uint16], storedOf[uint32], storedOf[uint64], storedOf[bool], storedOf[string])

func storedOf[T elem](t *Tensor) int { return len(*field[T](t)) }

// perType holds one instantiation of a generic function per element type, so that a kernel
// picks its loop with one lookup rather than a switch. A nil entry is a type the function does
// not take. Float16 and BFloat16 share Uint16's entry where data only moves.
type perType[F any] [BFloat16 + 1]F

// numericTypes builds a perType of the ten numeric instantiations.
func numeric[F any](f32, f64, i8, i16, i32, i64, u8, u16, u32, u64 F) perType[F] {
	var t perType[F]
	t[Float32], t[Float64], t[Int8], t[Int16], t[Int32] = f32, f64, i8, i16, i32
	t[Int64], t[Uint8], t[Uint16], t[Uint32], t[Uint64] = i64, u8, u16, u32, u64
	return t
}

// everyType builds a perType of every instantiation, for functions that only move data.
func everyType[F any](f32, f64, i8, i16, i32, i64, u8, u16, u32, u64, b, s F) perType[F] {
	t := numeric(f32, f64, i8, i16, i32, i64, u8, u16, u32, u64)
	t[Bool], t[String], t[Float16], t[BFloat16] = b, s, u16, u16
	return t
}

// check validates a tensor from outside: a known type, non-negative dimensions whose product
// stays within maxElements, and at least as much data as the shape needs.
func (t *Tensor) check() error {
	if _, ok := dtypeOf(int32(t.DType)); !ok {
		return fmt.Errorf("element type %d is not one this runtime holds", t.DType)
	}
	if err := checkDims(t.Shape); err != nil {
		return err
	}
	if n, have := t.Len(), t.stored(); have < n {
		return fmt.Errorf("shape %v needs %d values, the tensor holds %d", t.Shape, n, have)
	}
	return nil
}

// maxElements bounds any one tensor the runtime makes or accepts; maxRank its rank (the
// decoder's limit too).
const (
	maxElements = 64 << 20
	maxRank     = 8
)

// checkDims refuses negative dimensions, ranks past maxRank and sizes past maxElements.
func checkDims(shape []int) error {
	_, err := elements(shape)
	return err
}

// elements is the number of elements of a shape that checkDims accepts (checked one dimension
// at a time, so the product cannot overflow).
func elements(shape []int) (int, error) {
	if len(shape) > maxRank {
		return 0, fmt.Errorf("rank %d is more than the %d supported", len(shape), maxRank)
	}
	n := 1
	for _, d := range shape {
		if d < 0 {
			return 0, fmt.Errorf("shape %s has a negative dimension", shapeString(shape))
		}
		if d != 0 && n > maxElements/d {
			return 0, fmt.Errorf("shape %s exceeds %d elements", shapeString(shape), maxElements)
		}
		n *= d
	}
	return n, nil
}

// reset makes t a tensor of type dt and the given shape, its data field long enough (growing
// only when its capacity is short: a state's buffers stop allocating once they have seen the
// largest batch). The values are whatever the buffer held.
func (t *Tensor) reset(dt DType, shape ...int) error {
	if dt == t.DType && slices.Equal(t.Shape, shape) {
		// The same as last time (a state's buffers see the same shapes run after run): the
		// data field is already as long as the shape needs, unless someone shortened it.
		n := product(shape)
		if (dt == Float32 && len(t.Float32) == n) || (dt != Float32 && t.stored() == n) {
			t.Keys = nil
			return nil
		}
	}
	n, err := elements(shape)
	if err != nil {
		return err
	}
	t.DType = dt
	t.Shape = append(t.Shape[:0], shape...)
	if dt == Float32 { // the hot type, without the table's indirect call
		if cap(t.Float32) >= n {
			t.Float32 = t.Float32[:n]
		} else {
			t.Float32 = make([]float32, n)
		}
	} else if f := growFns[dt]; f != nil {
		f(t, n)
	} else {
		return fmt.Errorf("element type %s is not supported", dt)
	}
	t.Keys = nil
	return nil
}

var growFns = everyType(growTo[float32], growTo[float64], growTo[int8], growTo[int16], growTo[int32],
	growTo[int64], growTo[uint8], growTo[uint16], growTo[uint32], growTo[uint64], growTo[bool], growTo[string])

// growTo makes t's field for T n long, reallocating only when its capacity is short.
func growTo[T elem](t *Tensor, n int) {
	f := field[T](t)
	if cap(*f) >= n {
		*f = (*f)[:n]
	} else {
		*f = make([]T, n)
	}
}

// view makes t share src's data under another shape of the same size (Reshape, Squeeze,
// Identity: no copy). The executor drops views at the end of a run.
func (t *Tensor) view(src *Tensor, shape []int) {
	keys := src.Keys
	*t = Tensor{DType: src.DType, Shape: append(t.Shape[:0], shape...),
		Float32: src.Float32, Float64: src.Float64, Int8: src.Int8, Int16: src.Int16, Int32: src.Int32,
		Int64: src.Int64, Uint8: src.Uint8, Uint16: src.Uint16, Uint32: src.Uint32, Uint64: src.Uint64,
		Bool: src.Bool, String: src.String, Keys: keys}
}

// dropData forgets every data field (keeping the shape's storage), so that a pooled state does
// not keep a caller's data alive.
func (t *Tensor) dropData() {
	*t = Tensor{Shape: t.Shape[:0]}
}

// copyFrom makes t a copy of src, reusing t's buffers. Keys are shared, not copied: they are
// constants of the model.
func (t *Tensor) copyFrom(src *Tensor) error {
	if err := t.reset(src.DType, src.Shape...); err != nil {
		return err
	}
	copyElems(t, 0, src, 0, src.Len())
	t.Keys = src.Keys
	return nil
}

// Clone is a deep copy of t (Keys included).
func (t *Tensor) Clone() *Tensor {
	c := &Tensor{}
	if err := c.copyFrom(t); err != nil {
		// t was made by this package or checked, so its shape is valid; a Tensor built by hand
		// with a bad shape clones to its type and shape only.
		c.DType, c.Shape = t.DType, append([]int(nil), t.Shape...)
	}
	if t.Keys != nil {
		c.Keys = t.Keys.Clone()
	}
	return c
}

// copyElems copies n elements from src (from sOff) to dst (from dOff); both have the same type.
func copyElems(dst *Tensor, dOff int, src *Tensor, sOff, n int) {
	copyFns[src.DType](dst, dOff, src, sOff, n)
}

var copyFns = everyType(copyOf[float32], copyOf[float64], copyOf[int8], copyOf[int16], copyOf[int32],
	copyOf[int64], copyOf[uint8], copyOf[uint16], copyOf[uint32], copyOf[uint64], copyOf[bool], copyOf[string])

func copyOf[T elem](dst *Tensor, dOff int, src *Tensor, sOff, n int) {
	copy((*field[T](dst))[dOff:dOff+n], (*field[T](src))[sOff:sOff+n])
}

// Summary prints a tensor for messages and tests: its type, shape and up to 16 values.
func (t *Tensor) Summary() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s%v", t.DType, t.Shape)
	if t.Keys != nil {
		fmt.Fprintf(&b, " keys %s", t.Keys.Summary())
	}
	n := min(t.Len(), t.stored(), 16)
	b.WriteString(" [")
	for i := range n {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(formatFns[t.DType](t, i))
	}
	if n < t.Len() {
		b.WriteString(" ...")
	}
	b.WriteByte(']')
	return b.String()
}

var formatFns = everyType(formatAt[float32], formatAt[float64], formatAt[int8], formatAt[int16], formatAt[int32],
	formatAt[int64], formatAt[uint8], formatAt[uint16], formatAt[uint32], formatAt[uint64], formatAt[bool], formatAt[string])

func formatAt[T elem](t *Tensor, i int) string {
	v := (*field[T](t))[i]
	if s, ok := any(v).(string); ok {
		return fmt.Sprintf("%q", s)
	}
	return fmt.Sprint(v)
}
