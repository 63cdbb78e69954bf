package onnxpb

import (
	"encoding/binary"
	"fmt"
	"math"
)

// Elements is the number of values the tensor's dims call for (1 for a scalar). Decode has
// already refused dims whose product overflows or passes the limits.
func (t *Tensor) Elements() int64 {
	n := int64(1)
	for _, d := range t.Dims {
		n *= d
	}
	return n
}

// The typed accessors below return a tensor's values as the Go type of its element type, from
// whichever field the producer used: raw_data (little-endian, every type but STRING) or the
// typed field onnx.proto assigns to the type. They check the element type and that the count
// matches the dims, and refuse external data.

// Float32s reads a FLOAT tensor.
func (t *Tensor) Float32s() ([]float32, error) {
	return fixed(t, TypeFloat, 4, func(b []byte) float32 { return math.Float32frombits(binary.LittleEndian.Uint32(b)) },
		t.FloatData, func(v float32) float32 { return v })
}

// Float64s reads a DOUBLE tensor.
func (t *Tensor) Float64s() ([]float64, error) {
	return fixed(t, TypeDouble, 8, func(b []byte) float64 { return math.Float64frombits(binary.LittleEndian.Uint64(b)) },
		t.DoubleData, func(v float64) float64 { return v })
}

// Int64s reads an INT64 tensor.
func (t *Tensor) Int64s() ([]int64, error) {
	return fixed(t, TypeInt64, 8, func(b []byte) int64 { return int64(binary.LittleEndian.Uint64(b)) },
		t.Int64Data, func(v int64) int64 { return v })
}

// Int32s reads an INT32 tensor.
func (t *Tensor) Int32s() ([]int32, error) {
	return fixed(t, TypeInt32, 4, func(b []byte) int32 { return int32(binary.LittleEndian.Uint32(b)) },
		t.Int32Data, func(v int32) int32 { return v })
}

// Int16s reads an INT16 tensor.
func (t *Tensor) Int16s() ([]int16, error) {
	return fixed(t, TypeInt16, 2, func(b []byte) int16 { return int16(binary.LittleEndian.Uint16(b)) },
		t.Int32Data, func(v int32) int16 { return int16(v) })
}

// Int8s reads an INT8 tensor.
func (t *Tensor) Int8s() ([]int8, error) {
	return fixed(t, TypeInt8, 1, func(b []byte) int8 { return int8(b[0]) },
		t.Int32Data, func(v int32) int8 { return int8(v) })
}

// Uint8s reads a UINT8 tensor.
func (t *Tensor) Uint8s() ([]uint8, error) {
	return fixed(t, TypeUint8, 1, func(b []byte) uint8 { return b[0] },
		t.Int32Data, func(v int32) uint8 { return uint8(v) })
}

// Uint16s reads a UINT16 tensor, or the bits of a FLOAT16 or BFLOAT16 one (as onnx.proto keeps
// them).
func (t *Tensor) Uint16s() ([]uint16, error) {
	typ := TypeUint16
	if t.DataType == TypeFloat16 || t.DataType == TypeBFloat16 {
		typ = t.DataType
	}
	return fixed(t, typ, 2, func(b []byte) uint16 { return binary.LittleEndian.Uint16(b) },
		t.Int32Data, func(v int32) uint16 { return uint16(v) })
}

// Uint32s reads a UINT32 tensor.
func (t *Tensor) Uint32s() ([]uint32, error) {
	return fixed(t, TypeUint32, 4, func(b []byte) uint32 { return binary.LittleEndian.Uint32(b) },
		t.Uint64Data, func(v uint64) uint32 { return uint32(v) })
}

// Uint64s reads a UINT64 tensor.
func (t *Tensor) Uint64s() ([]uint64, error) {
	return fixed(t, TypeUint64, 8, func(b []byte) uint64 { return binary.LittleEndian.Uint64(b) },
		t.Uint64Data, func(v uint64) uint64 { return v })
}

// Bools reads a BOOL tensor.
func (t *Tensor) Bools() ([]bool, error) {
	return fixed(t, TypeBool, 1, func(b []byte) bool { return b[0] != 0 },
		t.Int32Data, func(v int32) bool { return v != 0 })
}

// Strings reads a STRING tensor (onnx.proto keeps strings in string_data only).
func (t *Tensor) Strings() ([]string, error) {
	if err := t.check(TypeString); err != nil {
		return nil, err
	}
	if t.RawData != nil {
		return nil, fmt.Errorf("tensor %q: a STRING tensor cannot use raw_data", t.Name)
	}
	if want := t.Elements(); int64(len(t.StringData)) != want {
		return nil, fmt.Errorf("tensor %q: has %d values, shape %v needs %d", t.Name, len(t.StringData), t.Dims, want)
	}
	out := make([]string, len(t.StringData))
	for i, s := range t.StringData {
		out[i] = string(s)
	}
	return out, nil
}

func (t *Tensor) check(typ int32) error {
	if t.External {
		return fmt.Errorf("tensor %q: external data is not supported", t.Name)
	}
	if t.DataType != typ {
		return fmt.Errorf("tensor %q: want %s, have %s", t.Name, TypeName(typ), TypeName(t.DataType))
	}
	return nil
}

// fixed reads a tensor of a fixed-size element type from raw_data (size bytes a value, read by
// fromRaw) or from its typed field (converted by conv).
func fixed[T, F any](t *Tensor, typ int32, size int, fromRaw func([]byte) T, field []F, conv func(F) T) ([]T, error) {
	if err := t.check(typ); err != nil {
		return nil, err
	}
	want := t.Elements()
	if t.RawData != nil {
		if int64(len(t.RawData)) != int64(size)*want {
			return nil, fmt.Errorf("tensor %q: raw_data has %d bytes, shape %v needs %d", t.Name, len(t.RawData), t.Dims, int64(size)*want)
		}
		out := make([]T, want)
		for i := range out {
			out[i] = fromRaw(t.RawData[i*size:])
		}
		return out, nil
	}
	if int64(len(field)) != want {
		return nil, fmt.Errorf("tensor %q: has %d values, shape %v needs %d", t.Name, len(field), t.Dims, want)
	}
	out := make([]T, want)
	for i, v := range field {
		out[i] = conv(v)
	}
	return out, nil
}
