package model

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/freightcast/freightcast/internal/onnxpb"
)

// unsupported stands in for the executor's refusal error until the ai.onnx.ml operators join
// the runtime branch's executor; this file goes away with that merge.
func unsupported(format string, args ...any) error { return fmt.Errorf(format, args...) }

// pbAttrs reads a node's attributes straight from the decoded protobuf, until the executor's
// node context provides attrReader.
type pbAttrs struct{ n *onnxpb.Node }

func (p pbAttrs) find(name string, want onnxpb.AttrType) (*onnxpb.Attribute, error) {
	for i := range p.n.Attributes {
		a := &p.n.Attributes[i]
		if a.Name == name {
			if a.Type != want && a.Type != onnxpb.AttrUndefined {
				return nil, fmt.Errorf("attribute %s has type %d, want %d", name, a.Type, want)
			}
			return a, nil
		}
	}
	return nil, nil
}

func (p pbAttrs) attrInts(name string) ([]int64, bool, error) {
	a, err := p.find(name, onnxpb.AttrInts)
	if a == nil || err != nil {
		return nil, false, err
	}
	return a.Ints, true, nil
}

func (p pbAttrs) attrFloats(name string) ([]float32, bool, error) {
	a, err := p.find(name, onnxpb.AttrFloats)
	if a == nil || err != nil {
		return nil, false, err
	}
	return a.Floats, true, nil
}

func (p pbAttrs) attrStrings(name string) ([]string, bool, error) {
	a, err := p.find(name, onnxpb.AttrStrings)
	if a == nil || err != nil {
		return nil, false, err
	}
	out := make([]string, len(a.Strings))
	for i, s := range a.Strings {
		out[i] = string(s)
	}
	return out, true, nil
}

func (p pbAttrs) attrString(name, def string) (string, error) {
	a, err := p.find(name, onnxpb.AttrString)
	if a == nil || err != nil {
		return def, err
	}
	return string(a.S), nil
}

func (p pbAttrs) attrInt(name string, def int64) (int64, error) {
	a, err := p.find(name, onnxpb.AttrInt)
	if a == nil || err != nil {
		return def, err
	}
	return a.I, nil
}

func (p pbAttrs) attrFloat64s(name string) ([]float64, bool, bool, error) {
	a, err := p.find(name, onnxpb.AttrTensor)
	if a == nil || err != nil {
		return nil, false, false, err
	}
	if a.T == nil {
		return nil, false, false, fmt.Errorf("attribute %s holds no tensor", name)
	}
	t := a.T
	switch {
	case t.DataType == onnxpb.TypeDouble && t.RawData == nil:
		return t.DoubleData, true, true, nil
	case t.DataType == onnxpb.TypeDouble:
		if len(t.RawData)%8 != 0 {
			return nil, false, false, fmt.Errorf("attribute %s: raw_data is not whole doubles", name)
		}
		v := make([]float64, len(t.RawData)/8)
		for i := range v {
			v[i] = math.Float64frombits(binary.LittleEndian.Uint64(t.RawData[8*i:]))
		}
		return v, true, true, nil
	case t.DataType == onnxpb.TypeFloat:
		f, err := t.Floats()
		if err != nil {
			return nil, false, false, err
		}
		v := make([]float64, len(f))
		for i, x := range f {
			v[i] = float64(x)
		}
		return v, false, true, nil
	}
	return nil, false, false, fmt.Errorf("attribute %s has element type %s, want FLOAT or DOUBLE", name, onnxpb.TypeName(t.DataType))
}

func (p pbAttrs) attrNames() []string {
	out := make([]string, len(p.n.Attributes))
	for i, a := range p.n.Attributes {
		out[i] = a.Name
	}
	return out
}
