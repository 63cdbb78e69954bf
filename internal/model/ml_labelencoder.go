package model

import (
	"fmt"
	"math"
	"slices"
)

// LabelEncoder (ai.onnx.ml 1, 2 and 4) maps each element through a table of keys to values,
// writing a default for keys it lacks. Opset 1 maps strings to their index in classes_strings
// or back; opset 2 takes keys_*/values_* attributes of strings, int64s or floats; opset 4 adds
// keys_tensor/values_tensor/default_tensor of any of those types, int32, int16 or double, and
// says that a NaN key matches NaN inputs. When a key repeats, the last one counts.

func init() {
	register(opImpl{domain: domainML, name: "LabelEncoder", minOpset: 1, maxOpset: maxOpsetML, compile: compileLabelEncoder})
}

// labelTable is a compiled LabelEncoder: keys, and the value (or def) to write for each.
type labelTable struct {
	keys, values, def *Tensor
	byString          map[string]int
	byNumber          map[float64]int // integer and float keys alike, as float64 (exact for int ≤ 2^53)
	byInt             map[int64]int
	nan               int // index of a NaN key, or -1
}

func compileLabelEncoder(n *nodeCtx) (kernel, error) {
	if err := n.arity(1, 1, 1, 1); err != nil {
		return nil, err
	}
	var tab *labelTable
	var err error
	switch {
	case n.opset == 1:
		tab, err = labelEncoderV1(n)
	case n.opset < 4:
		tab, err = labelEncoderV2(n, false)
	default:
		tab, err = labelEncoderV2(n, true)
	}
	if err != nil {
		return nil, err
	}
	return tab.kernel(n, n.opset >= 4)
}

// kernel checks the input against the table's keys and returns the kernel mapping it: the
// LabelEncoder's and CategoryMapper's.
func (tab *labelTable) kernel(n *nodeCtx, nanKeys bool) (kernel, error) {
	if err := n.needTypes(0, tab.keys.DType); err != nil {
		return nil, err
	}
	if err := tab.index(nanKeys); err != nil {
		return nil, err
	}
	n.setOutTensor(0, tab.values.DType, slices.Clone(n.shape(0)))
	return mlRowKernel(func(_ *exec, in, out []*Tensor) error {
		X := in[0]
		if err := out[0].reset(tab.values.DType, X.Shape...); err != nil {
			return err
		}
		for i := range X.Len() {
			if j := tab.lookup(X, i); j >= 0 {
				copyElems(out[0], i, tab.values, j, 1)
			} else {
				copyElems(out[0], i, tab.def, 0, 1)
			}
		}
		return nil
	}), nil
}

// labelEncoderV1 reads opset 1: classes_strings, mapping a string to its index (default_int64)
// or an int64 index to its string (default_string); the input type tells the direction.
func labelEncoderV1(n *nodeCtx) (*labelTable, error) {
	if err := checkAttrNames(n, "LabelEncoder", n.opset, []string{"classes_strings", "default_int64", "default_string"}, nil); err != nil {
		return nil, err
	}
	classes, _, err := n.attrStrings("classes_strings")
	if err != nil {
		return nil, err
	}
	defInt, defStr, err := mapDefaults(n)
	if err != nil {
		return nil, err
	}
	idx := make([]int64, len(classes))
	for i := range idx {
		idx[i] = int64(i)
	}
	strs, ints := NewTensor([]int{len(classes)}, classes), NewTensor([]int{len(idx)}, idx)
	switch n.dtype(0) {
	case String:
		return &labelTable{keys: strs, values: ints, def: NewTensor([]int{}, []int64{defInt})}, nil
	case Int64:
		return &labelTable{keys: ints, values: strs, def: NewTensor([]int{}, []string{defStr})}, nil
	}
	return nil, unsupported("LabelEncoder (opset 1) maps strings and int64s, not %s", n.dtype(0))
}

// mapDefaults reads default_int64 and default_string, the defaults of a string↔int64 map
// (LabelEncoder opset 1, CategoryMapper).
func mapDefaults(n *nodeCtx) (int64, string, error) {
	defInt, err := n.attrInt("default_int64", -1)
	if err != nil {
		return 0, "", err
	}
	defStr, err := n.attrString("default_string", "_Unused")
	return defInt, defStr, err
}

// labelEncoderV2 reads opsets 2 to 5: keys_*/values_* attributes, and from opset 4 the tensor
// forms.
func labelEncoderV2(n *nodeCtx, tensors bool) (*labelTable, error) {
	known := []string{"keys_strings", "keys_int64s", "keys_floats", "values_strings", "values_int64s",
		"values_floats", "default_string", "default_int64", "default_float"}
	if tensors {
		known = append(known, "keys_tensor", "values_tensor", "default_tensor")
	}
	if err := checkAttrNames(n, "LabelEncoder", n.opset, known, nil); err != nil {
		return nil, err
	}
	keys, err := oneListAttr(n, "keys", tensors)
	if err != nil {
		return nil, err
	}
	values, err := oneListAttr(n, "values", tensors)
	if err != nil {
		return nil, err
	}
	if keys.Len() != values.Len() {
		return nil, fmt.Errorf("has %d keys and %d values", keys.Len(), values.Len())
	}
	t := &labelTable{keys: keys, values: values}
	if tensors {
		if d, err := n.attrTensor("default_tensor"); err != nil {
			return nil, err
		} else if d != nil {
			if d.DType != values.DType || d.Len() != 1 {
				return nil, fmt.Errorf("default_tensor is %s%v; it must be one %s", d.DType, d.Shape, values.DType)
			}
			t.def = d
		}
	}
	if t.def == nil {
		switch values.DType {
		case String:
			s, err := n.attrString("default_string", "_Unused")
			if err != nil {
				return nil, err
			}
			t.def = NewTensor([]int{}, []string{s})
		case Int64:
			v, err := n.attrInt("default_int64", -1)
			if err != nil {
				return nil, err
			}
			t.def = NewTensor([]int{}, []int64{v})
		case Float32:
			v, err := n.attrFloat("default_float", float32(math.Copysign(0, -1)))
			if err != nil {
				return nil, err
			}
			t.def = NewTensor([]int{}, []float32{v})
		default:
			// The tensor forms' default for other types is 0 of the type (a new tensor is zero).
			t.def = &Tensor{}
			if err := t.def.reset(values.DType); err != nil {
				return nil, err
			}
		}
	}
	return t, nil
}

// oneListAttr reads the one keys_* (or values_*) attribute the node sets, as a 1-D tensor.
func oneListAttr(n *nodeCtx, what string, tensors bool) (*Tensor, error) {
	var found []*Tensor
	if v, ok, err := n.attrStrings(what + "_strings"); err != nil {
		return nil, err
	} else if ok {
		found = append(found, NewTensor([]int{len(v)}, v))
	}
	if v, ok, err := n.attrInts(what + "_int64s"); err != nil {
		return nil, err
	} else if ok {
		found = append(found, NewTensor([]int{len(v)}, v))
	}
	if v, ok, err := n.attrFloats(what + "_floats"); err != nil {
		return nil, err
	} else if ok {
		found = append(found, NewTensor([]int{len(v)}, v))
	}
	if tensors {
		if t, err := n.attrTensor(what + "_tensor"); err != nil {
			return nil, err
		} else if t != nil {
			switch t.DType {
			case String, Int64, Int32, Int16, Float32, Float64:
			default:
				return nil, unsupported("%s_tensor has type %s", what, t.DType)
			}
			if len(t.Shape) != 1 {
				return nil, fmt.Errorf("%s_tensor has shape %v; it must be 1-D", what, t.Shape)
			}
			found = append(found, t)
		}
	}
	if len(found) != 1 {
		return nil, fmt.Errorf("sets %d %s attributes; it needs exactly one", len(found), what)
	}
	return found[0], nil
}

// index builds the lookup maps; the last of duplicate keys wins. nanKeys makes a NaN key match
// NaN inputs (opset 4 on); before, a NaN key matches nothing.
func (t *labelTable) index(nanKeys bool) error {
	t.nan = -1
	switch t.keys.DType {
	case String:
		t.byString = make(map[string]int, t.keys.Len())
		for i, k := range t.keys.String {
			t.byString[k] = i
		}
	case Int64:
		t.byInt = make(map[int64]int, t.keys.Len())
		for i, k := range t.keys.Int64 {
			t.byInt[k] = i
		}
	default:
		f := &Tensor{}
		if err := castInto(f, t.keys, Float64); err != nil {
			return err
		}
		t.byNumber = make(map[float64]int, f.Len())
		for i, k := range f.Float64 {
			switch {
			case !math.IsNaN(k):
				t.byNumber[k] = i
			case nanKeys:
				t.nan = i
			}
		}
	}
	return nil
}

// lookup is the key index of X's element i, or -1.
func (t *labelTable) lookup(X *Tensor, i int) int {
	var j int
	var ok bool
	switch X.DType {
	case String:
		j, ok = t.byString[X.String[i]]
	case Int64:
		j, ok = t.byInt[X.Int64[i]]
	default:
		var v float64
		switch X.DType {
		case Float32:
			v = float64(X.Float32[i])
		case Float64:
			v = X.Float64[i]
		case Int32:
			v = float64(X.Int32[i])
		case Int16:
			v = float64(X.Int16[i])
		}
		if math.IsNaN(v) {
			return t.nan
		}
		j, ok = t.byNumber[v]
	}
	if !ok {
		return -1
	}
	return j
}
