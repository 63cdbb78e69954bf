package onnxpb

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"google.golang.org/protobuf/encoding/protowire"
)

// Limits bound what Decode accepts, so that a hostile file cannot make the process allocate
// without end.
type Limits struct {
	// MaxTensorElements caps the element count of any one tensor (declared dims and data alike).
	MaxTensorElements int64
	// MaxTotalElements caps the elements of all initializers together.
	MaxTotalElements int64
	// MaxNodes caps the node count of the graph.
	MaxNodes int
	// MaxRank caps the number of dimensions of any tensor or value info.
	MaxRank int
}

// DefaultLimits fit tabular models comfortably (64 Mi parameters) and refuse anything absurd.
var DefaultLimits = Limits{
	MaxTensorElements: 64 << 20,
	MaxTotalElements:  64 << 20,
	MaxNodes:          10000,
	MaxRank:           8,
}

// ErrMalformed is wrapped by every error that stems from bytes that are not valid ONNX.
var ErrMalformed = errors.New("malformed ONNX model")

type decoder struct {
	lim   Limits
	total int64
}

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
}

// Decode parses an ONNX ModelProto within DefaultLimits.
func Decode(data []byte) (*Model, error) { return DecodeWithLimits(data, DefaultLimits) }

// DecodeWithLimits parses an ONNX ModelProto within lim.
func DecodeWithLimits(data []byte, lim Limits) (*Model, error) {
	d := &decoder{lim: lim}
	m := &Model{}
	err := fields(data, "model", func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error {
		var err error
		switch {
		case num == 1 && typ == protowire.VarintType:
			m.IRVersion = int64(x)
		case num == 2 && typ == protowire.BytesType:
			m.ProducerName = string(v)
		case num == 3 && typ == protowire.BytesType:
			m.ProducerVersion = string(v)
		case num == 4 && typ == protowire.BytesType:
			m.Domain = string(v)
		case num == 5 && typ == protowire.VarintType:
			m.ModelVersion = int64(x)
		case num == 6 && typ == protowire.BytesType:
			m.DocString = string(v)
		case num == 7 && typ == protowire.BytesType:
			if m.Graph != nil {
				return malformed("model has two graphs")
			}
			m.Graph, err = d.graph(v)
		case num == 8 && typ == protowire.BytesType:
			var os OperatorSet
			err = fields(v, "opset_import", func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error {
				switch {
				case num == 1 && typ == protowire.BytesType:
					os.Domain = string(v)
				case num == 2 && typ == protowire.VarintType:
					os.Version = int64(x)
				}
				return nil
			})
			m.OpsetImport = append(m.OpsetImport, os)
		case num == 14 && typ == protowire.BytesType:
			var kv StringString
			err = fields(v, "metadata_props", func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
				switch {
				case num == 1 && typ == protowire.BytesType:
					kv.Key = string(v)
				case num == 2 && typ == protowire.BytesType:
					kv.Value = string(v)
				}
				return nil
			})
			m.MetadataProps = append(m.MetadataProps, kv)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	if m.Graph == nil {
		return nil, malformed("model has no graph")
	}
	return m, nil
}

// fields walks the fields of one message, handing each to fn: v holds the payload of
// length-delimited and fixed fields, x the value of varint and fixed fields.
func fields(b []byte, what string, fn func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return malformed("%s: bad field tag: %v", what, protowire.ParseError(n))
		}
		b = b[n:]
		var v []byte
		var x uint64
		switch typ {
		case protowire.VarintType:
			x, n = protowire.ConsumeVarint(b)
		case protowire.Fixed32Type:
			var y uint32
			y, n = protowire.ConsumeFixed32(b)
			x = uint64(y)
			if n >= 0 {
				v = b[:n]
			}
		case protowire.Fixed64Type:
			x, n = protowire.ConsumeFixed64(b)
			if n >= 0 {
				v = b[:n]
			}
		case protowire.BytesType:
			v, n = protowire.ConsumeBytes(b)
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return malformed("%s: field %d: %v", what, num, protowire.ParseError(n))
		}
		b = b[n:]
		if err := fn(num, typ, v, x); err != nil {
			return err
		}
	}
	return nil
}

func (d *decoder) graph(b []byte) (*Graph, error) {
	g := &Graph{}
	err := fields(b, "graph", func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
		if typ != protowire.BytesType {
			return nil
		}
		switch num {
		case 1:
			if len(g.Nodes) >= d.lim.MaxNodes {
				return malformed("graph has more than %d nodes", d.lim.MaxNodes)
			}
			n, err := d.node(v)
			if err != nil {
				return err
			}
			g.Nodes = append(g.Nodes, n)
		case 2:
			g.Name = string(v)
		case 5:
			t, err := d.tensor(v)
			if err != nil {
				return err
			}
			g.Initializers = append(g.Initializers, *t)
		case 10:
			g.DocString = string(v)
		case 15:
			g.SparseInitializers++
		case 11, 12, 13:
			vi, err := d.valueInfo(v)
			if err != nil {
				return err
			}
			switch num {
			case 11:
				g.Inputs = append(g.Inputs, vi)
			case 12:
				g.Outputs = append(g.Outputs, vi)
			default:
				g.ValueInfo = append(g.ValueInfo, vi)
			}
		}
		return nil
	})
	return g, err
}

func (d *decoder) node(b []byte) (Node, error) {
	var n Node
	err := fields(b, "node", func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
		if typ != protowire.BytesType {
			return nil
		}
		switch num {
		case 1:
			n.Inputs = append(n.Inputs, string(v))
		case 2:
			n.Outputs = append(n.Outputs, string(v))
		case 3:
			n.Name = string(v)
		case 4:
			n.OpType = string(v)
		case 5:
			a, err := d.attribute(v)
			if err != nil {
				return fmt.Errorf("node %q: %w", n.Name, err)
			}
			n.Attributes = append(n.Attributes, a)
		case 7:
			n.Domain = string(v)
		}
		return nil
	})
	return n, err
}

func (d *decoder) attribute(b []byte) (Attribute, error) {
	var a Attribute
	err := fields(b, "attribute", func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error {
		var err error
		switch {
		case num == 1 && typ == protowire.BytesType:
			a.Name = string(v)
		case num == 20 && typ == protowire.VarintType:
			a.Type = AttrType(x)
		case num == 2 && typ == protowire.Fixed32Type:
			a.F = math.Float32frombits(uint32(x))
		case num == 3 && typ == protowire.VarintType:
			a.I = int64(x)
		case num == 4 && typ == protowire.BytesType:
			a.S = v
		case num == 5 && typ == protowire.BytesType:
			a.T, err = d.tensor(v)
		case num == 7:
			a.Floats, err = d.appendFloats(a.Floats, typ, v, x, "attribute floats")
		case num == 8:
			a.Ints, err = d.appendInt64s(a.Ints, typ, v, x, "attribute ints")
		case num == 9 && typ == protowire.BytesType:
			if int64(len(a.Strings)) >= d.lim.MaxTensorElements {
				return malformed("attribute %q has too many strings", a.Name)
			}
			a.Strings = append(a.Strings, v)
		case num == 10 && typ == protowire.BytesType:
			var t *Tensor
			if t, err = d.tensor(v); err == nil {
				a.Tensors = append(a.Tensors, *t)
			}
		case (num == 6 || num == 11) && typ == protowire.BytesType:
			// Subgraphs (If, Loop, Scan) are counted, not decoded: the compiler refuses them, and
			// leaving them opaque keeps nesting out of the decoder.
			a.Graphs++
		case num == 21 && typ == protowire.BytesType:
			a.RefAttrName = string(v)
		}
		return err
	})
	return a, err
}

func (d *decoder) valueInfo(b []byte) (ValueInfo, error) {
	vi := ValueInfo{Kind: KindUndefined}
	err := fields(b, "value_info", func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
		switch {
		case num == 1 && typ == protowire.BytesType:
			vi.Name = string(v)
		case num == 2 && typ == protowire.BytesType:
			return d.typeProto(v, &vi, 0)
		}
		return nil
	})
	if err != nil {
		return vi, fmt.Errorf("value %q: %w", vi.Name, err)
	}
	return vi, nil
}

// maxTypeDepth bounds the nesting of sequence, map and optional types: ZipMap's
// seq(map(int64,tensor(float))) is three deep.
const maxTypeDepth = 8

// typeProto decodes a TypeProto into vi (all but its Name).
func (d *decoder) typeProto(b []byte, vi *ValueInfo, depth int) error {
	if depth >= maxTypeDepth {
		return malformed("type nested more than %d deep", maxTypeDepth)
	}
	elem := func(v []byte) error {
		vi.Elem = &ValueInfo{Kind: KindUndefined}
		return d.typeProto(v, vi.Elem, depth+1)
	}
	return fields(b, "type", func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
		if typ != protowire.BytesType {
			return nil
		}
		switch num {
		case 1:
			vi.Kind = KindTensor
			return d.tensorType(v, vi)
		case 8:
			vi.Kind = KindSparseTensor
			return d.tensorType(v, vi)
		case 4, 9:
			vi.Kind = KindSequence
			if num == 9 {
				vi.Kind = KindOptional
			}
			return fields(v, "element type", func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
				if num == 1 && typ == protowire.BytesType {
					return elem(v)
				}
				return nil
			})
		case 5:
			vi.Kind = KindMap
			return fields(v, "map_type", func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error {
				switch {
				case num == 1 && typ == protowire.VarintType:
					vi.KeyType = int32(x)
				case num == 2 && typ == protowire.BytesType:
					return elem(v)
				}
				return nil
			})
		case 7:
			vi.Kind = KindOpaque
		}
		return nil
	})
}

func (d *decoder) tensorType(b []byte, vi *ValueInfo) error {
	return fields(b, "tensor_type", func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error {
		switch {
		case num == 1 && typ == protowire.VarintType:
			vi.ElemType = int32(x)
		case num == 2 && typ == protowire.BytesType:
			vi.HasShape = true
			return fields(v, "shape", func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
				if num != 1 || typ != protowire.BytesType {
					return nil
				}
				if len(vi.Shape) >= d.lim.MaxRank {
					return malformed("shape has more than %d dimensions", d.lim.MaxRank)
				}
				var dim Dim
				err := fields(v, "dim", func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error {
					switch {
					case num == 1 && typ == protowire.VarintType:
						dim.Value, dim.Fixed = int64(x), true
					case num == 2 && typ == protowire.BytesType:
						dim.Param, dim.Fixed = string(v), false
					}
					return nil
				})
				if dim.Fixed && (dim.Value < 0 || dim.Value > d.lim.MaxTensorElements) {
					return malformed("dimension %d out of range", dim.Value)
				}
				vi.Shape = append(vi.Shape, dim)
				return err
			})
		}
		return nil
	})
}

func (d *decoder) tensor(b []byte) (*Tensor, error) {
	t := &Tensor{}
	err := fields(b, "tensor", func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error {
		var err error
		switch num {
		case 1:
			t.Dims, err = d.appendInt64s(t.Dims, typ, v, x, "tensor dims")
			if len(t.Dims) > d.lim.MaxRank {
				return malformed("tensor has more than %d dimensions", d.lim.MaxRank)
			}
		case 2:
			t.DataType = int32(x)
		case 3:
			return malformed("segmented tensors are not supported")
		case 4:
			t.FloatData, err = d.appendFloats(t.FloatData, typ, v, x, "float_data")
		case 5:
			var xs []int64
			xs, err = d.appendInt64s(nil, typ, v, x, "int32_data")
			for _, x := range xs {
				t.Int32Data = append(t.Int32Data, int32(x))
			}
		case 6:
			if typ != protowire.BytesType {
				return malformed("string_data: wire type %d", typ)
			}
			if int64(len(t.StringData)) >= d.lim.MaxTensorElements {
				return malformed("string_data has too many elements")
			}
			t.StringData = append(t.StringData, v)
		case 11:
			var xs []int64
			xs, err = d.appendInt64s(nil, typ, v, x, "uint64_data")
			for _, x := range xs {
				t.Uint64Data = append(t.Uint64Data, uint64(x))
			}
		case 7:
			t.Int64Data, err = d.appendInt64s(t.Int64Data, typ, v, x, "int64_data")
		case 8:
			t.Name = string(v)
		case 9:
			if int64(len(v)) > 8*d.lim.MaxTensorElements {
				return malformed("raw_data of %d bytes exceeds the tensor size cap", len(v))
			}
			t.RawData = v
		case 10:
			t.DoubleData, err = d.appendDoubles(t.DoubleData, typ, v, x)
		case 13:
			t.External = true
		case 14:
			t.External = t.External || x == 1
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	n, err := d.elements(t.Dims)
	if err != nil {
		return nil, fmt.Errorf("tensor %q: %w", t.Name, err)
	}
	d.total += n
	if d.total > d.lim.MaxTotalElements {
		return nil, malformed("initializers exceed %d elements in total", d.lim.MaxTotalElements)
	}
	return t, nil
}

// elements multiplies dims, refusing negative dims and products past the cap (checked at every
// step so the product cannot overflow).
func (d *decoder) elements(dims []int64) (int64, error) {
	n := int64(1)
	for _, v := range dims {
		if v < 0 {
			return 0, malformed("negative dimension %d", v)
		}
		if v != 0 && n > d.lim.MaxTensorElements/v {
			return 0, malformed("shape %v exceeds %d elements", dims, d.lim.MaxTensorElements)
		}
		n *= v
	}
	return n, nil
}

func (d *decoder) appendInt64s(dst []int64, typ protowire.Type, v []byte, x uint64, what string) ([]int64, error) {
	if typ == protowire.VarintType {
		if int64(len(dst)) >= d.lim.MaxTensorElements {
			return nil, malformed("%s has too many elements", what)
		}
		return append(dst, int64(x)), nil
	}
	if typ != protowire.BytesType {
		return nil, malformed("%s: wire type %d", what, typ)
	}
	for len(v) > 0 {
		y, n := protowire.ConsumeVarint(v)
		if n < 0 {
			return nil, malformed("%s: %v", what, protowire.ParseError(n))
		}
		if int64(len(dst)) >= d.lim.MaxTensorElements {
			return nil, malformed("%s has too many elements", what)
		}
		dst = append(dst, int64(y))
		v = v[n:]
	}
	return dst, nil
}

func (d *decoder) appendFloats(dst []float32, typ protowire.Type, v []byte, x uint64, what string) ([]float32, error) {
	switch typ {
	case protowire.Fixed32Type:
		return append(dst, math.Float32frombits(uint32(x))), nil
	case protowire.BytesType:
		if len(v)%4 != 0 {
			return nil, malformed("%s: %d bytes is not a whole number of floats", what, len(v))
		}
		if int64(len(dst)+len(v)/4) > d.lim.MaxTensorElements {
			return nil, malformed("%s has too many elements", what)
		}
		for i := 0; i+4 <= len(v); i += 4 {
			dst = append(dst, math.Float32frombits(binary.LittleEndian.Uint32(v[i:])))
		}
		return dst, nil
	}
	return nil, malformed("%s: wire type %d", what, typ)
}

func (d *decoder) appendDoubles(dst []float64, typ protowire.Type, v []byte, x uint64) ([]float64, error) {
	switch typ {
	case protowire.Fixed64Type:
		return append(dst, math.Float64frombits(x)), nil
	case protowire.BytesType:
		if len(v)%8 != 0 {
			return nil, malformed("double_data: %d bytes is not a whole number of doubles", len(v))
		}
		if int64(len(dst)+len(v)/8) > d.lim.MaxTensorElements {
			return nil, malformed("double_data has too many elements")
		}
		for i := 0; i+8 <= len(v); i += 8 {
			dst = append(dst, math.Float64frombits(binary.LittleEndian.Uint64(v[i:])))
		}
		return dst, nil
	}
	return nil, malformed("double_data: wire type %d", typ)
}

// DecodeTensor parses a serialized TensorProto (the input_N.pb and output_N.pb files of ONNX's
// backend test cases) within DefaultLimits.
func DecodeTensor(data []byte) (*Tensor, error) {
	d := &decoder{lim: DefaultLimits}
	return d.tensor(data)
}
