package model

import (
	"fmt"

	"github.com/freightcast/freightcast/internal/onnxpb"
)

// DType is a tensor element type. Its values are ONNX's TensorProto.DataType numbers, so a
// model file's types convert by a cast.
type DType uint8

// The element types. Every one has a Tensor field to hold it (Float16 and BFloat16 as their bits
// in Uint16); which ones an operator accepts is the operator's business.
const (
	Undefined DType = DType(onnxpb.TypeUndefined)
	Float32   DType = DType(onnxpb.TypeFloat)
	Uint8     DType = DType(onnxpb.TypeUint8)
	Int8      DType = DType(onnxpb.TypeInt8)
	Uint16    DType = DType(onnxpb.TypeUint16)
	Int16     DType = DType(onnxpb.TypeInt16)
	Int32     DType = DType(onnxpb.TypeInt32)
	Int64     DType = DType(onnxpb.TypeInt64)
	String    DType = DType(onnxpb.TypeString)
	Bool      DType = DType(onnxpb.TypeBool)
	Float16   DType = DType(onnxpb.TypeFloat16)
	Float64   DType = DType(onnxpb.TypeDouble)
	Uint32    DType = DType(onnxpb.TypeUint32)
	Uint64    DType = DType(onnxpb.TypeUint64)
	BFloat16  DType = DType(onnxpb.TypeBFloat16)
)

// dtypeOf maps an ONNX element type to a DType this runtime can hold.
func dtypeOf(t int32) (DType, bool) {
	switch t {
	case onnxpb.TypeFloat, onnxpb.TypeUint8, onnxpb.TypeInt8, onnxpb.TypeUint16, onnxpb.TypeInt16,
		onnxpb.TypeInt32, onnxpb.TypeInt64, onnxpb.TypeString, onnxpb.TypeBool, onnxpb.TypeFloat16,
		onnxpb.TypeDouble, onnxpb.TypeUint32, onnxpb.TypeUint64, onnxpb.TypeBFloat16:
		return DType(t), true
	}
	return Undefined, false
}

// OIP is the Open Inference Protocol name of the type: FP32, INT64, BYTES (strings), ...
func (d DType) OIP() string { return onnxpb.TypeName(int32(d)) }

// String is ONNX's name of the type, as in tensor(float).
func (d DType) String() string { return onnxpb.ElemName(int32(d)) }

// isFloat tells the floating-point types.
func (d DType) isFloat() bool {
	return d == Float32 || d == Float64 || d == Float16 || d == BFloat16
}

// isInt tells the integer types.
func (d DType) isInt() bool {
	switch d {
	case Int8, Int16, Int32, Int64, Uint8, Uint16, Uint32, Uint64:
		return true
	}
	return false
}

// DTypeFromOIP maps an Open Inference Protocol datatype name to a DType.
func DTypeFromOIP(name string) (DType, error) {
	for _, d := range []DType{Float32, Float64, Float16, BFloat16, Int8, Int16, Int32, Int64, Uint8, Uint16, Uint32, Uint64, Bool, String} {
		if d.OIP() == name {
			return d, nil
		}
	}
	return Undefined, fmt.Errorf("unknown datatype %q", name)
}
