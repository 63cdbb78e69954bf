// Package onnxpb reads and writes the subset of the ONNX protobuf format that Freightcast needs:
// model and graph metadata, nodes, attributes, value infos with symbolic dimensions, dense tensors
// and metadata_props.
//
// onnx-go decodes graphs for execution but keeps its generated protobuf types internal and drops
// what a server must publish (symbolic batch dimensions, metadata_props). This package fills that
// gap. It is written for files from outside the process: every length is checked against the
// input, element counts are capped, and a malformed file is an error, never a panic.
package onnxpb

import (
	"fmt"
	"strings"
)

// Element types from onnx.proto's TensorProto.DataType.
const (
	TypeUndefined int32 = 0
	TypeFloat     int32 = 1
	TypeUint8     int32 = 2
	TypeInt8      int32 = 3
	TypeInt32     int32 = 6
	TypeInt64     int32 = 7
	TypeString    int32 = 8
	TypeBool      int32 = 9
	TypeFloat16   int32 = 10
	TypeDouble    int32 = 11
)

// TypeName names an ONNX element type the way error messages and the Open Inference Protocol do.
func TypeName(t int32) string {
	switch t {
	case TypeFloat:
		return "FP32"
	case TypeUint8:
		return "UINT8"
	case TypeInt8:
		return "INT8"
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
}

// ValueInfo is a ValueInfoProto restricted to tensor types.
type ValueInfo struct {
	Name     string
	ElemType int32
	// HasShape tells whether the type carries a shape; without one the rank is unknown.
	HasShape bool
	Shape    []Dim
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
// (little-endian), as the producer chose.
type Tensor struct {
	Dims       []int64
	DataType   int32
	FloatData  []float32
	Int32Data  []int32
	Int64Data  []int64
	DoubleData []float64
	RawData    []byte
	Name       string
	// External is set when the tensor's data lives outside the file, which Freightcast refuses.
	External bool
}
