// Package onnxpb reads and writes the ONNX protobuf format: model and graph metadata, nodes,
// attributes, value types (tensors with symbolic dimensions, sequences, maps, optionals), dense
// tensors of every element type, and metadata_props.
//
// It is the authority on what a model file holds: internal/model compiles what this package
// decodes and nothing else. It is written for files from outside the process: every length is
// checked against the input, element counts and nesting are capped, and a malformed file is an
// error, never a panic. What it recognises but does not carry (subgraph attributes, sparse
// initializers, external data) is recorded so that the compiler can refuse it by name.
package onnxpb

import (
	"fmt"
	"strings"
)

// Element types from onnx.proto's TensorProto.DataType.
const (
	TypeUndefined  int32 = 0
	TypeFloat      int32 = 1
	TypeUint8      int32 = 2
	TypeInt8       int32 = 3
	TypeUint16     int32 = 4
	TypeInt16      int32 = 5
	TypeInt32      int32 = 6
	TypeInt64      int32 = 7
	TypeString     int32 = 8
	TypeBool       int32 = 9
	TypeFloat16    int32 = 10
	TypeDouble     int32 = 11
	TypeUint32     int32 = 12
	TypeUint64     int32 = 13
	TypeComplex64  int32 = 14
	TypeComplex128 int32 = 15
	TypeBFloat16   int32 = 16
)

// TypeName names an ONNX element type the way error messages and the Open Inference Protocol do
// (types the protocol has no name for get ONNX's).
func TypeName(t int32) string {
	switch t {
	case TypeFloat:
		return "FP32"
	case TypeUint8:
		return "UINT8"
	case TypeInt8:
		return "INT8"
	case TypeUint16:
		return "UINT16"
	case TypeInt16:
		return "INT16"
	case TypeInt32:
		return "INT32"
	case TypeInt64:
		return "INT64"
	case TypeString:
		return "BYTES"
	case TypeBool:
		return "BOOL"
	case TypeFloat16:
		return "FP16"
	case TypeDouble:
		return "FP64"
	case TypeUint32:
		return "UINT32"
	case TypeUint64:
		return "UINT64"
	case TypeComplex64:
		return "COMPLEX64"
	case TypeComplex128:
		return "COMPLEX128"
	case TypeBFloat16:
		return "BF16"
	}
	return fmt.Sprintf("onnx-type-%d", t)
}

// AttrType is onnx.proto's AttributeProto.AttributeType.
type AttrType int32

// Attribute types from onnx.proto.
const (
	AttrUndefined AttrType = 0
	AttrFloat     AttrType = 1
	AttrInt       AttrType = 2
	AttrString    AttrType = 3
	AttrTensor    AttrType = 4
	AttrGraph     AttrType = 5
	AttrFloats    AttrType = 6
	AttrInts      AttrType = 7
	AttrStrings   AttrType = 8
	AttrTensors   AttrType = 9
	AttrGraphs    AttrType = 10
)

// Model is an ONNX ModelProto.
type Model struct {
	IRVersion       int64
	OpsetImport     []OperatorSet
	ProducerName    string
	ProducerVersion string
	Domain          string
	ModelVersion    int64
	DocString       string
	Graph           *Graph
	MetadataProps   []StringString
}

// Metadata returns the value of a metadata_props key and whether it is present.
func (m *Model) Metadata(key string) (string, bool) {
	for _, p := range m.MetadataProps {
		if p.Key == key {
			return p.Value, true
		}
	}
	return "", false
}

// OperatorSet is an OperatorSetIdProto.
type OperatorSet struct {
	Domain  string
	Version int64
}

// StringString is a StringStringEntryProto (one metadata_props entry).
type StringString struct {
	Key   string
	Value string
}

// Graph is a GraphProto.
type Graph struct {
	Name         string
	Nodes        []Node
	Initializers []Tensor
	DocString    string
	Inputs       []ValueInfo
	Outputs      []ValueInfo
	ValueInfo    []ValueInfo
	// SparseInitializers counts sparse_initializer entries, which are not decoded.
	SparseInitializers int
}

// Node is a NodeProto.
type Node struct {
	Inputs     []string
	Outputs    []string
	Name       string
	OpType     string
	Domain     string
	Attributes []Attribute
}

// Attribute is an AttributeProto. Only the field matching Type is meaningful.
type Attribute struct {
	Name    string
	Type    AttrType
	F       float32
	I       int64
	S       []byte
	T       *Tensor
	Floats  []float32
	Ints    []int64
	Strings [][]byte
	Tensors []Tensor
	// Graphs counts the subgraphs (g and graphs) the attribute holds; they are not decoded.
	Graphs int
	// RefAttrName is set in function bodies, where the attribute refers to one of the caller's.
	RefAttrName string
}

// ValueInfo is a ValueInfoProto: a name and a TypeProto. The type's fields sit in the ValueInfo
// itself; Kind says which of them apply.
type ValueInfo struct {
	Name string
	// Kind is the TypeProto case; the zero value is a tensor.
	Kind TypeKind
	// ElemType is a tensor's element type (Kind KindTensor or KindSparseTensor).
	ElemType int32
	// HasShape tells whether a tensor type carries a shape; without one the rank is unknown.
	HasShape bool
	Shape    []Dim
	// KeyType is a map's key type (Kind KindMap).
	KeyType int32
	// Elem is a sequence's or an optional's element type, or a map's value type; its Name is
	// empty.
	Elem *ValueInfo
}

// TypeKind is the case of an ONNX TypeProto.
type TypeKind uint8

// The TypeProto cases. KindUndefined is a TypeProto with none set (or a value_info with no type).
const (
	KindTensor TypeKind = iota
	KindSequence
	KindMap
	KindOptional
	KindSparseTensor
	KindOpaque
	KindUndefined
)

// TypeString writes the type the way ONNX does: tensor(float), seq(map(int64,tensor(float))).
func (vi *ValueInfo) TypeString() string {
	elem := func() string {
		if vi.Elem == nil {
			return "undefined"
		}
		return vi.Elem.TypeString()
	}
	switch vi.Kind {
	case KindTensor:
		return "tensor(" + ElemName(vi.ElemType) + ")"
	case KindSparseTensor:
		return "sparse_tensor(" + ElemName(vi.ElemType) + ")"
	case KindSequence:
		return "seq(" + elem() + ")"
	case KindMap:
		return "map(" + ElemName(vi.KeyType) + "," + elem() + ")"
	case KindOptional:
		return "optional(" + elem() + ")"
	case KindOpaque:
		return "opaque"
	}
	return "undefined"
}

// ElemName is ONNX's own name for an element type, as in tensor(float).
func ElemName(t int32) string {
	names := [...]string{"undefined", "float", "uint8", "int8", "uint16", "int16", "int32", "int64",
		"string", "bool", "float16", "double", "uint32", "uint64", "complex64", "complex128", "bfloat16"}
	if t >= 0 && int(t) < len(names) {
		return names[t]
	}
	return fmt.Sprintf("type-%d", t)
}

// Dim is one TensorShapeProto dimension: a fixed Value, or symbolic (Param, possibly empty).
type Dim struct {
	Value int64
	Param string
	Fixed bool
}

// ShapeString prints a shape the way error messages show it, symbolic dimensions as -1.
func ShapeString(dims []Dim) string {
	parts := make([]string, len(dims))
	for i, d := range dims {
		if d.Fixed {
			parts[i] = fmt.Sprint(d.Value)
		} else {
			parts[i] = "-1"
		}
	}
	return "[" + strings.Join(parts, ",") + "]"
}

// Tensor is a dense TensorProto. Data sits in exactly one of the typed slices or RawData
// (little-endian), as the producer chose; the typed accessors (Float32s, Int64s, ...) read it
// whichever it is.
type Tensor struct {
	Dims       []int64
	DataType   int32
	FloatData  []float32
	Int32Data  []int32
	StringData [][]byte
	Int64Data  []int64
	DoubleData []float64
	Uint64Data []uint64
	RawData    []byte
	Name       string
	// External is set when the tensor's data lives outside the file, which Freightcast refuses.
	External bool
}
