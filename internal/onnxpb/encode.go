package onnxpb

import (
	"math"

	"google.golang.org/protobuf/encoding/protowire"
)

// Marshal encodes the model. Fields are written in field-number order and repeated numbers
// packed, so the same model always gives the same bytes (the freight model generator relies on
// that).
func (m *Model) Marshal() []byte {
	var b []byte
	b = appendVarint(b, 1, uint64(m.IRVersion))
	b = appendString(b, 2, m.ProducerName)
	b = appendString(b, 3, m.ProducerVersion)
	b = appendString(b, 4, m.Domain)
	b = appendVarint(b, 5, uint64(m.ModelVersion))
	b = appendString(b, 6, m.DocString)
	if m.Graph != nil {
		b = appendMessage(b, 7, m.Graph.marshal())
	}
	for _, os := range m.OpsetImport {
		var o []byte
		o = appendString(o, 1, os.Domain)
		o = appendVarint(o, 2, uint64(os.Version))
		b = appendMessage(b, 8, o)
	}
	for _, kv := range m.MetadataProps {
		var o []byte
		o = appendString(o, 1, kv.Key)
		o = appendString(o, 2, kv.Value)
		b = appendMessage(b, 14, o)
	}
	return b
}

func (g *Graph) marshal() []byte {
	var b []byte
	for _, n := range g.Nodes {
		b = appendMessage(b, 1, n.marshal())
	}
	b = appendString(b, 2, g.Name)
	for i := range g.Initializers {
		b = appendMessage(b, 5, g.Initializers[i].marshal())
	}
	b = appendString(b, 10, g.DocString)
	for _, vi := range g.Inputs {
		b = appendMessage(b, 11, vi.marshal())
	}
	for _, vi := range g.Outputs {
		b = appendMessage(b, 12, vi.marshal())
	}
	for _, vi := range g.ValueInfo {
		b = appendMessage(b, 13, vi.marshal())
	}
	for range g.SparseInitializers {
		b = appendMessage(b, 15, nil)
	}
	return b
}

func (n *Node) marshal() []byte {
	var b []byte
	for _, s := range n.Inputs {
		b = protowire.AppendTag(b, 1, protowire.BytesType)
		b = protowire.AppendString(b, s)
	}
	for _, s := range n.Outputs {
		b = protowire.AppendTag(b, 2, protowire.BytesType)
		b = protowire.AppendString(b, s)
	}
	b = appendString(b, 3, n.Name)
	b = appendString(b, 4, n.OpType)
	for _, a := range n.Attributes {
		b = appendMessage(b, 5, a.marshal())
	}
	b = appendString(b, 7, n.Domain)
	return b
}

func (a *Attribute) marshal() []byte {
	var b []byte
	b = appendString(b, 1, a.Name)
	switch a.Type {
	case AttrFloat:
		b = protowire.AppendTag(b, 2, protowire.Fixed32Type)
		b = protowire.AppendFixed32(b, math.Float32bits(a.F))
	case AttrInt:
		b = protowire.AppendTag(b, 3, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(a.I))
	case AttrString:
		b = protowire.AppendTag(b, 4, protowire.BytesType)
		b = protowire.AppendBytes(b, a.S)
	case AttrTensor:
		if a.T != nil {
			b = appendMessage(b, 5, a.T.marshal())
		}
	case AttrFloats:
		b = appendPackedFloats(b, 7, a.Floats)
	case AttrInts:
		b = appendPackedInt64s(b, 8, a.Ints)
	case AttrStrings:
		for _, s := range a.Strings {
			b = protowire.AppendTag(b, 9, protowire.BytesType)
			b = protowire.AppendBytes(b, s)
		}
	case AttrTensors:
		for i := range a.Tensors {
			b = appendMessage(b, 10, a.Tensors[i].marshal())
		}
	case AttrGraph, AttrGraphs:
		// Subgraphs are not decoded, so they are written back empty.
		for range a.Graphs {
			b = appendMessage(b, 11, nil)
		}
	}
	b = appendVarint(b, 20, uint64(a.Type))
	b = appendString(b, 21, a.RefAttrName)
	return b
}

func (vi *ValueInfo) marshal() []byte {
	var b []byte
	b = appendString(b, 1, vi.Name)
	if vi.Kind != KindUndefined {
		b = appendMessage(b, 2, vi.marshalType())
	}
	return b
}

func (vi *ValueInfo) marshalType() []byte {
	elem := func() []byte {
		if vi.Elem == nil {
			return nil
		}
		return appendMessage(nil, 1, vi.Elem.marshalType())
	}
	switch vi.Kind {
	case KindSequence:
		return appendMessage(nil, 4, elem())
	case KindOptional:
		return appendMessage(nil, 9, elem())
	case KindMap:
		m := appendVarint(nil, 1, uint64(vi.KeyType))
		if vi.Elem != nil {
			m = appendMessage(m, 2, vi.Elem.marshalType())
		}
		return appendMessage(nil, 5, m)
	case KindOpaque:
		return appendMessage(nil, 7, nil)
	case KindSparseTensor:
		return appendMessage(nil, 8, vi.marshalTensorType())
	}
	return appendMessage(nil, 1, vi.marshalTensorType())
}

func (vi *ValueInfo) marshalTensorType() []byte {
	var tt []byte
	tt = appendVarint(tt, 1, uint64(vi.ElemType))
	if vi.HasShape {
		var shape []byte
		for _, d := range vi.Shape {
			var dim []byte
			if d.Fixed {
				dim = protowire.AppendTag(dim, 1, protowire.VarintType)
				dim = protowire.AppendVarint(dim, uint64(d.Value))
			} else {
				dim = protowire.AppendTag(dim, 2, protowire.BytesType)
				dim = protowire.AppendString(dim, d.Param)
			}
			shape = appendMessage(shape, 1, dim)
		}
		tt = appendMessage(tt, 2, shape)
	}
	return tt
}

func (t *Tensor) marshal() []byte {
	var b []byte
	b = appendPackedInt64s(b, 1, t.Dims)
	b = appendVarint(b, 2, uint64(t.DataType))
	b = appendPackedFloats(b, 4, t.FloatData)
	if len(t.Int32Data) > 0 {
		xs := make([]int64, len(t.Int32Data))
		for i, v := range t.Int32Data {
			xs[i] = int64(v)
		}
		b = appendPackedInt64s(b, 5, xs)
	}
	for _, s := range t.StringData {
		b = protowire.AppendTag(b, 6, protowire.BytesType)
		b = protowire.AppendBytes(b, s)
	}
	b = appendPackedInt64s(b, 7, t.Int64Data)
	b = appendString(b, 8, t.Name)
	if t.RawData != nil {
		b = protowire.AppendTag(b, 9, protowire.BytesType)
		b = protowire.AppendBytes(b, t.RawData)
	}
	if len(t.DoubleData) > 0 {
		var p []byte
		for _, v := range t.DoubleData {
			p = protowire.AppendFixed64(p, math.Float64bits(v))
		}
		b = appendMessage(b, 10, p)
	}
	if len(t.Uint64Data) > 0 {
		var p []byte
		for _, v := range t.Uint64Data {
			p = protowire.AppendVarint(p, v)
		}
		b = appendMessage(b, 11, p)
	}
	if t.External {
		b = appendVarint(b, 14, 1)
	}
	return b
}

// appendVarint and appendString skip zero values, as proto3 encoders do.
func appendVarint(b []byte, num protowire.Number, v uint64) []byte {
	if v == 0 {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return protowire.AppendVarint(b, v)
}

func appendString(b []byte, num protowire.Number, s string) []byte {
	if s == "" {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendString(b, s)
}

func appendMessage(b []byte, num protowire.Number, msg []byte) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendBytes(b, msg)
}

func appendPackedInt64s(b []byte, num protowire.Number, xs []int64) []byte {
	if len(xs) == 0 {
		return b
	}
	var p []byte
	for _, x := range xs {
		p = protowire.AppendVarint(p, uint64(x))
	}
	return appendMessage(b, num, p)
}

func appendPackedFloats(b []byte, num protowire.Number, xs []float32) []byte {
	if len(xs) == 0 {
		return b
	}
	p := make([]byte, 0, 4*len(xs))
	for _, x := range xs {
		p = protowire.AppendFixed32(p, math.Float32bits(x))
	}
	return appendMessage(b, num, p)
}
