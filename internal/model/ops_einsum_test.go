package model

import (
	"testing"

	"github.com/freightcast/freightcast/internal/onnxpb"
)

// TestEinsumHostileEquations: equations that do not fit their operands are errors at load or
// at run, never a panic or a walk past maxEinsumSteps.
func TestEinsumHostileEquations(t *testing.T) {
	cases := map[string]struct {
		eq     string
		inputs int
		shape  []int64 // every input's declared shape; -1 a symbol
		run    []int
	}{
		"letter missing from the inputs": {"ij->k", 1, []int64{3, 4}, []int{3, 4}},
		"output letter twice":            {"ij->ii", 1, []int64{3, 4}, []int{3, 4}},
		"stray dot":                      {"i.j", 1, []int64{3, 4}, []int{3, 4}},
		"two ellipses":                   {"...i...", 1, []int64{3, 4}, []int{3, 4}},
		"a digit":                        {"i1", 1, []int64{3, 4}, []int{3, 4}},
		"too many letters":               {"ijk", 1, []int64{3, 4}, []int{3, 4}},
		"terms for inputs":               {"ij,jk", 1, []int64{3, 4}, []int{3, 4}},
		"diagonal of unequal axes":       {"ii->i", 1, []int64{3, 4}, []int{3, 4}},
		"sizes differing at run":         {"ij,ij->i", 2, []int64{-1, 4}, []int{3, 4}},
		"a walk past the limit":          {"a,b,c,d,e,f->", 6, []int64{-1}, []int{1 << 6}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			var names []string
			var inputs []onnxpb.ValueInfo
			for i := range tc.inputs {
				n := string(rune('a' + i))
				names = append(names, n)
				vi := tensorInfo(n, tc.shape...)
				if i == 1 && name == "sizes differing at run" {
					vi = tensorInfo(n, 5, 4)
				}
				inputs = append(inputs, vi)
			}
			spec := graphSpec{
				nodes:   []onnxpb.Node{node("Einsum", names, []string{"y"}, stringAttr("equation", tc.eq))},
				inputs:  inputs,
				outputs: []onnxpb.ValueInfo{{Name: "y", ElemType: onnxpb.TypeFloat}},
			}
			if err := loadOrRun(t, spec.modelBytes(), tc.run); err == nil {
				t.Errorf("Einsum %q ran", tc.eq)
			}
		})
	}
}
