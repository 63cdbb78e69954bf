package model

import "fmt"

// CategoryMapper (ai.onnx.ml 1) maps strings to int64s through the pairs cats_strings[i] ↔
// cats_int64s[i], or int64s back to strings; the input's type picks the direction, as in
// onnxruntime (the specification asks for exactly one default attribute, onnxruntime reads
// both with their defaults). A value without a pair becomes default_int64 (−1) or
// default_string ("_Unused"). When a key repeats, the last pair counts, as for LabelEncoder.
// It is LabelEncoder opset 1 with explicit pairs, and runs as one.

func init() {
	register(opImpl{domain: domainML, name: "CategoryMapper", minOpset: 1, maxOpset: maxOpsetML, compile: compileCategoryMapper})
}

func compileCategoryMapper(n *nodeCtx) (kernel, error) {
	if err := n.arity(1, 1, 1, 1); err != nil {
		return nil, err
	}
	if err := checkAttrNames(n, "CategoryMapper", n.opset, []string{"cats_int64s", "cats_strings", "default_int64", "default_string"}, nil); err != nil {
		return nil, err
	}
	if err := n.needTypes(0, String, Int64); err != nil {
		return nil, err
	}
	ints, _, err := n.attrInts("cats_int64s")
	if err != nil {
		return nil, err
	}
	strs, _, err := n.attrStrings("cats_strings")
	if err != nil {
		return nil, err
	}
	if len(ints) != len(strs) {
		return nil, fmt.Errorf("cats_int64s has %d values, cats_strings %d", len(ints), len(strs))
	}
	defInt, defStr, err := mapDefaults(n)
	if err != nil {
		return nil, err
	}
	ti, ts := NewTensor([]int{len(ints)}, ints), NewTensor([]int{len(strs)}, strs)
	tab := &labelTable{keys: ts, values: ti, def: NewTensor([]int{}, []int64{defInt})}
	if n.dtype(0) == Int64 {
		tab = &labelTable{keys: ti, values: ts, def: NewTensor([]int{}, []string{defStr})}
	}
	return tab.kernel(n, false)
}
