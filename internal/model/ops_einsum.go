package model

// Einsum: any equation numpy.einsum takes of letters and one ellipsis per term — products,
// contractions, diagonals (a letter repeated in a term), transposes, broadcast ellipsis axes,
// and the implicit output (the ellipsis, then the letters used once, sorted). The kernel walks
// every combination of the letters' sizes once, with each operand's offset kept by strides.

import (
	"fmt"
	"slices"
	"strings"
)

func init() {
	register(opImpl{domain: domainONNX, name: "Einsum", minOpset: 12, maxOpset: maxOpsetONNX, compile: compileEinsum})
}

// maxEinsumSteps bounds the letter combinations one run may walk.
const maxEinsumSteps = 1 << 32

// einsumTerm is one operand's subscripts: letters, with ellipsis marking where the broadcast
// axes go (-1 when the term has none).
type einsumTerm struct {
	letters  []byte
	ellipsis int // index into letters before which the ellipsis axes sit
}

func parseEinsumTerm(s string) (einsumTerm, error) {
	t := einsumTerm{ellipsis: -1}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '.':
			if t.ellipsis >= 0 || !strings.HasPrefix(s[i:], "...") {
				return t, fmt.Errorf("term %q has a stray or second ellipsis", s)
			}
			t.ellipsis = len(t.letters)
			i += 2
		case c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z':
			t.letters = append(t.letters, c)
		default:
			return t, fmt.Errorf("term %q has the character %q", s, c)
		}
	}
	return t, nil
}

type einsumKernel struct {
	inputs []einsumTerm
	output einsumTerm
	dtype  DType
}

func compileEinsum(n *nodeCtx) (kernel, error) {
	if err := n.arity(1, 32, 1, 1); err != nil {
		return nil, err
	}
	if err := n.needTypes(0, Float32, Float64, Int32, Int64, Uint32, Uint64); err != nil {
		return nil, err
	}
	for i := 1; i < n.numIn(); i++ {
		if err := n.sameType(i); err != nil {
			return nil, err
		}
	}
	eq, err := n.attrString("equation", "")
	if err != nil {
		return nil, err
	}
	eq = strings.ReplaceAll(eq, " ", "")
	lhs, rhs, explicit := strings.Cut(eq, "->")
	terms := strings.Split(lhs, ",")
	if len(terms) != n.numIn() {
		return nil, fmt.Errorf("equation %q has %d terms for %d inputs", eq, len(terms), n.numIn())
	}
	k := &einsumKernel{dtype: n.dtype(0)}
	counts := map[byte]int{}
	ellipsis := false
	for i, s := range terms {
		t, err := parseEinsumTerm(s)
		if err != nil {
			return nil, err
		}
		rank := len(n.shape(i))
		if len(t.letters) > rank || (t.ellipsis < 0 && len(t.letters) != rank) {
			return nil, fmt.Errorf("term %q for input %d of rank %d", s, i, rank)
		}
		ellipsis = ellipsis || t.ellipsis >= 0
		for _, c := range t.letters {
			counts[c]++
		}
		k.inputs = append(k.inputs, t)
	}
	if explicit {
		if k.output, err = parseEinsumTerm(rhs); err != nil {
			return nil, err
		}
		for i, c := range k.output.letters {
			if counts[c] == 0 || slices.Contains(k.output.letters[i+1:], c) {
				return nil, fmt.Errorf("output letter %q is not in the inputs, or twice in the output", c)
			}
		}
		if k.output.ellipsis >= 0 && !ellipsis {
			return nil, fmt.Errorf("the output has an ellipsis the inputs do not")
		}
	} else {
		k.output.ellipsis = -1
		if ellipsis {
			k.output.ellipsis = 0
		}
		for c, m := range counts {
			if m == 1 {
				k.output.letters = append(k.output.letters, c)
			}
		}
		slices.Sort(k.output.letters)
	}
	// The output shape, where the input shapes tell it at load.
	var ins [][]int
	for i := range k.inputs {
		ins = append(ins, n.shape(i))
	}
	shape, err := k.resolve(ins, nil)
	if err != nil {
		return nil, err
	}
	out := make([]int, len(shape.out))
	for i, d := range shape.out {
		out[i] = d
		if d < 0 {
			out[i] = n.sym()
		}
	}
	n.setOutTensor(0, k.dtype, out)
	n.keepStep()
	return k, nil
}

// einsumPlan is a resolved equation: every letter (the output's first, the ellipsis axes as
// letters of their own) with its size, each operand's stride for it, and the output's shape.
type einsumPlan struct {
	sizes   []int
	strides [][]int // [operand][letter]; the output is the last operand
	out     []int
}

// resolve matches the equation to shapes (symbols allowed at load: sizes < 0 stay unknown).
// With strides set it also computes the strides of each operand (every size known).
func (k *einsumKernel) resolve(shapes [][]int, p *einsumPlan) (*einsumPlan, error) {
	if p == nil {
		p = &einsumPlan{}
	}
	// The ellipsis axes, broadcast right-aligned over the inputs that have them.
	var ell []int
	for i, t := range k.inputs {
		if t.ellipsis < 0 {
			continue
		}
		s := shapes[i]
		e := s[t.ellipsis : t.ellipsis+len(s)-len(t.letters)]
		for len(ell) < len(e) {
			ell = append([]int{1}, ell...)
		}
		for j, d := range e {
			at := len(ell) - len(e) + j
			switch {
			case d == 1:
			case ell[at] == 1 || ell[at] == d:
				ell[at] = d
			case d < 0 || ell[at] < 0:
				ell[at] = -1
			default:
				return nil, fmt.Errorf("the ellipsis axes of the inputs do not broadcast: %v", shapes)
			}
		}
	}
	// letter ids: ellipsis axes 0..len(ell)-1 (as the output lays them), then letters
	ids := map[byte]int{}
	p.sizes = append(p.sizes[:0], ell...)
	order := slices.Clone(k.output.letters)
	for _, t := range k.inputs {
		for _, c := range t.letters {
			if !slices.Contains(order, c) {
				order = append(order, c)
			}
		}
	}
	known := make([]bool, len(ell)+len(order))
	for _, c := range order {
		ids[c] = len(p.sizes)
		p.sizes = append(p.sizes, 0)
	}
	for i, t := range k.inputs {
		s := shapes[i]
		for j, c := range t.letters {
			d := s[j]
			if t.ellipsis >= 0 && j >= t.ellipsis {
				d = s[j+len(s)-len(t.letters)]
			}
			id := ids[c]
			switch {
			case !known[id] || p.sizes[id] == d:
				p.sizes[id], known[id] = d, true
			case d < 0:
			case p.sizes[id] < 0:
				p.sizes[id] = d
			default:
				return nil, fmt.Errorf("letter %q is %d and %d long in %v", c, p.sizes[id], d, shapes)
			}
		}
	}
	// Each operand's axes as letter ids (-1: a broadcast axis of size 1); the output last.
	p.strides = p.strides[:0]
	for i, t := range append(slices.Clone(k.inputs), k.output) {
		var axes []int
		nEll := len(ell)
		if i < len(k.inputs) {
			nEll = len(shapes[i]) - len(t.letters)
		}
		for j, c := range t.letters {
			if j == t.ellipsis {
				for e := range nEll {
					axes = append(axes, len(ell)-nEll+e)
				}
			}
			axes = append(axes, ids[c])
		}
		if t.ellipsis >= len(t.letters) {
			for e := range nEll {
				axes = append(axes, len(ell)-nEll+e)
			}
		}
		var s []int
		if i < len(k.inputs) {
			s = shapes[i]
		} else {
			for _, id := range axes {
				s = append(s, p.sizes[id])
			}
			p.out = s
		}
		st := make([]int, len(p.sizes))
		stride := 1
		for j := len(axes) - 1; j >= 0; j-- {
			if s[j] != 1 || p.sizes[axes[j]] == 1 {
				st[axes[j]] += stride // a diagonal adds both axes' strides
			}
			stride *= max(s[j], 0)
		}
		p.strides = append(p.strides, st)
	}
	return p, nil
}

func (k *einsumKernel) run(x *exec, in, out []*Tensor) error {
	shapes := make([][]int, len(in))
	for i, t := range in {
		shapes[i] = t.Shape
		if len(t.Shape) < len(k.inputs[i].letters) || (k.inputs[i].ellipsis < 0 && len(t.Shape) != len(k.inputs[i].letters)) {
			return fmt.Errorf("input %d of shape %v for term %q", i, t.Shape, k.inputs[i].letters)
		}
	}
	p, err := k.resolve(shapes, nil)
	if err != nil {
		return err
	}
	steps := 1
	for _, d := range p.sizes {
		if d > 0 && steps > maxEinsumSteps/d {
			return fmt.Errorf("the equation over shapes %v walks more than %d combinations", shapes, maxEinsumSteps)
		}
		steps *= d
	}
	o := out[0]
	if err := o.reset(k.dtype, p.out...); err != nil {
		return err
	}
	switch k.dtype {
	case Float32:
		einsumT[float32](p, in, o)
	case Float64:
		einsumT[float64](p, in, o)
	case Int32:
		einsumT[int32](p, in, o)
	case Int64:
		einsumT[int64](p, in, o)
	case Uint32:
		einsumT[uint32](p, in, o)
	case Uint64:
		einsumT[uint64](p, in, o)
	}
	return nil
}

// einsumT walks every combination of letter values, odometer-style with the last letter
// fastest, adding the product of the operands' elements into the output's.
func einsumT[T number](p *einsumPlan, in []*Tensor, o *Tensor) {
	od := data[T](o)
	clear(od)
	for _, d := range p.sizes {
		if d == 0 {
			return
		}
	}
	ops := make([][]T, len(in))
	for i, t := range in {
		ops[i] = data[T](t)
	}
	nl := len(p.sizes)
	idx := make([]int, nl)
	offs := make([]int, len(in)+1) // operands, then the output
	if nl == 0 {
		v := T(1)
		for i := range ops {
			v *= ops[i][0]
		}
		od[0] = v
		return
	}
	last := nl - 1
	for {
		// the innermost letter in one loop
		for j := range p.sizes[last] {
			v := T(1)
			for i := range ops {
				v *= ops[i][offs[i]+j*p.strides[i][last]]
			}
			od[offs[len(in)]+j*p.strides[len(in)][last]] += v
		}
		d := last - 1
		for ; d >= 0; d-- {
			idx[d]++
			for i := range offs {
				offs[i] += p.strides[i][d]
			}
			if idx[d] < p.sizes[d] {
				break
			}
			for i := range offs {
				offs[i] -= idx[d] * p.strides[i][d]
			}
			idx[d] = 0
		}
		if d < 0 {
			return
		}
	}
}
